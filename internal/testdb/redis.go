//go:build linux

package testdb

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
)

// Redis is a redis-server started by StartRedis.
type Redis struct {
	*Server
	conf string
}

// RedisPort is the port every Redis of this package listens on, in its own
// namespace.
const RedisPort = 6379

// StartRedis starts redis-server in h on 127.0.0.1:6379 with its data in a
// new directory and the configuration lines conf (e.g. "requirepass s3"),
// and returns when the server has opened its port. dir, when not empty, is
// the data directory to use: another server's, to load what it saved.
func StartRedis(t testing.TB, h *netlab.Host, dir string, conf ...string) *Redis {
	t.Helper()
	Require(t, "redis-server", "redis-cli")
	if dir == "" {
		dir = t.TempDir()
	}
	lines := append([]string{"bind 127.0.0.1", "port 6379", "dir " + dir, "dbfilename dump.rdb",
		"save \"\"", "appendonly no", "daemonize no", "protected-mode no",
		"logfile \"\""}, conf...)
	path := filepath.Join(t.TempDir(), "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	bin, _ := lookBin("redis-server")
	r := &Redis{conf: path}
	r.Server = start(t, h, dir, filepath.Join(dir, "server.log"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), RedisPort),
		syscall.SIGTERM, bin, path)
	r.waitFor(t, "redis-server", func() bool {
		c, err := r.Dial(t.Context(), netip.Addr{})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// CLI runs redis-cli against the server with args and returns its output.
func (r *Redis) CLI(args ...string) (string, error) {
	return run(r.Host, append([]string{"redis-cli", "-h", "127.0.0.1", "-p", "6379"}, args...)...)
}

// MustCLI is CLI that fails t.
func (r *Redis) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := r.CLI(args...)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return strings.TrimSpace(out)
}
