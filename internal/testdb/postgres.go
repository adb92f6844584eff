//go:build linux

package testdb

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
)

// Postgres is a PostgreSQL server started by StartPostgres.
type Postgres struct {
	*Server
	Data string // the cluster's data directory
}

// PostgresPort is the port every PostgreSQL of this package listens on, in
// its own namespace.
const PostgresPort = 5432

// PostgresOptions shape a cluster.
type PostgresOptions struct {
	// Settings are postgresql.conf lines ("max_connections = 5").
	Settings []string
	// Standby starts the cluster as a standby (standby.signal) with no
	// primary to follow: it stays in recovery, and with hot_standby = off
	// it answers every connection "the database system is not accepting
	// connections" (57P03).
	Standby bool
}

// StartPostgres makes a new cluster (initdb, trust authentication, user
// postgres) and starts it in h on 127.0.0.1:5432, as the postgres user
// (PostgreSQL refuses to run as root). It returns when pg_isready says the
// server accepts connections, or, for a standby, when it has opened its
// port (it says "starting up" then, and later "not accepting").
func StartPostgres(t testing.TB, h *netlab.Host, o PostgresOptions) *Postgres {
	t.Helper()
	Require(t, "initdb", "postgres", "pg_isready")
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("testdb: %v (the postgresql package makes this user)", err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The server's user must reach its directory through every parent.
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
			os.Chmod(p, st.Mode().Perm()|0o011)
		}
	}
	data := filepath.Join(dir, "data")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	asPostgres := []string{"setpriv", "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}
	initdb, _ := lookBin("initdb")
	cmd := exec.Command(asPostgres[0], append(asPostgres[1:], initdb, "-D", data, "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testdb: initdb: %v\n%s", err, tail(string(out)))
	}
	conf := append([]string{"listen_addresses = '127.0.0.1'", "port = 5432",
		fmt.Sprintf("unix_socket_directories = '%s'", dir), "dynamic_shared_memory_type = mmap",
		"fsync = off", "shared_buffers = 16MB"}, o.Settings...)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(strings.Join(conf, "\n") + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if o.Standby {
		if err := os.WriteFile(filepath.Join(data, "standby.signal"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(data, "standby.signal"), uid, gid)
	}
	bin, _ := lookBin("postgres")
	logfile := filepath.Join(dir, "server.log")
	lf, err := os.Create(logfile)
	if err != nil {
		t.Fatal(err)
	}
	lf.Close()
	os.Chown(logfile, uid, gid)
	p := &Postgres{Data: data}
	// SIGINT: a fast shutdown, which does not wait for clients to leave.
	p.Server = start(t, h, dir, logfile, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), PostgresPort),
		syscall.SIGINT, append(asPostgres, bin, "-D", data)...)
	isready, _ := lookBin("pg_isready")
	p.waitFor(t, "postgres", func() bool {
		if !o.Standby {
			_, err := run(h, isready, "-q", "-h", "127.0.0.1", "-p", "5432")
			return err == nil
		}
		c, err := p.Dial(t.Context(), netip.Addr{})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}
