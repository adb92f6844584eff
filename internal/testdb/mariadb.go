//go:build linux

package testdb

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// MariaDB is a mariadbd started by StartMariaDB.
type MariaDB struct {
	*Server
	Socket string // its Unix socket, where root logs in without a password
}

// MariaDBPort is the port every MariaDB of this package listens on, in its
// own namespace.
const MariaDBPort = 3306

// template is a data directory made once per test binary by
// mariadb-install-db (seconds, most of a start), copied for each server.
var template struct {
	once sync.Once
	dir  string
	err  error
}

// StartMariaDB starts mariadbd in h on 127.0.0.1:3306 with a fresh copy of
// a new data directory, its Unix socket for root, and the server options
// args (e.g. "--max-connections=2"). Client names are resolved from h's
// hosts file (Hosts), so the host cache and max_connect_errors work as on
// a network: give Hosts a name for every source address a test dials from,
// or the server's lookup of it fails (and counts no errors). It returns
// when the server answers on its socket.
func StartMariaDB(t testing.TB, h *netlab.Host, args ...string) *MariaDB {
	t.Helper()
	Require(t, "mariadbd", "mariadb-install-db", "mariadb")
	template.once.Do(func() {
		template.dir, template.err = installMariaDB()
	})
	if template.err != nil {
		t.Fatalf("testdb: %v", template.err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-a", template.dir, filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("testdb: copy the MariaDB data directory: %v: %s", err, out)
	}
	m := &MariaDB{Socket: filepath.Join(dir, "mysqld.sock")}
	bin, _ := lookBin("mariadbd")
	m.Server = start(t, h, dir, filepath.Join(dir, "server.log"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), MariaDBPort),
		syscall.SIGTERM, append([]string{bin, "--no-defaults", "--user=root",
			"--datadir=" + filepath.Join(dir, "data"), "--socket=" + m.Socket,
			"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--bind-address=127.0.0.1", "--port=3306",
			"--skip-log-bin", "--innodb-buffer-pool-size=16M", "--performance-schema=ON"}, args...)...)
	m.waitFor(t, "mariadbd", func() bool {
		_, err := m.Query("SELECT 1")
		return err == nil
	})
	return m
}

// Query runs SQL as root over the Unix socket and returns the rows, tab-
// separated, without the header.
func (m *MariaDB) Query(sql string) (string, error) {
	return run(m.Host, "mariadb", "--no-defaults", "-S", m.Socket, "-uroot", "-N", "-B", "-e", sql)
}

// MustQuery is Query that fails t.
func (m *MariaDB) MustQuery(t testing.TB, sql string) string {
	t.Helper()
	out, err := m.Query(sql)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return strings.TrimSpace(out)
}

// Login logs in as user with password over TCP from source (an address of
// the namespace's loopback), as a monitoring host would, and runs SELECT 1.
func (m *MariaDB) Login(source netip.Addr, user, password string) error {
	_, err := run(m.Host, "mariadb", "--no-defaults", "--protocol=tcp", "-h", m.Addr.Addr().String(),
		"-P", "3306", "--bind-address="+source.String(), "-u"+user, "-p"+password, "-N", "-B", "-e", "SELECT 1")
	return err
}

// installMariaDB makes the template data directory.
func installMariaDB() (string, error) {
	sweepTemplates()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("reach-testdb-mariadb-%d", os.Getpid()))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	// --skip-name-resolve: no lookup of this machine's name for the grant
	// tables (it could ask a nameserver).
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--user=root", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
		"--innodb-log-file-size=4M").CombinedOutput()
	if err != nil {
		return "", &installError{err: err, out: string(out)}
	}
	return data, nil
}

// sweepTemplates removes the template directories of test binaries that
// have exited: a test binary cannot remove its own when it ends.
func sweepTemplates() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "reach-testdb-mariadb-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "reach-testdb-mariadb-"))
		if err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

type installError struct {
	err error
	out string
}

func (e *installError) Error() string {
	return "mariadb-install-db: " + e.err.Error() + ":\n" + tail(e.out)
}

// Hold opens n sessions as root over the Unix socket, each in a mariadb
// client running SELECT SLEEP(3600), until the test ends (the clients are
// killed by pid). It does not wait for them to log in.
func (m *MariaDB) Hold(t testing.TB, n int) {
	t.Helper()
	for range n {
		cmd := exec.Command("mariadb", "--no-defaults", "-S", m.Socket, "-uroot", "-e", "SELECT SLEEP(3600)")
		cmd.WaitDelay = time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("testdb: %v", err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
}
