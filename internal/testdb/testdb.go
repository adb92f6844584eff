//go:build linux

// Package testdb starts real database servers for tests from Debian's
// binaries (mariadb-server, redis-server, postgresql; scripts/test installs
// them): each in a network namespace of its own (internal/netlab), on that
// namespace's loopback, with its data in the test's temporary directory.
// A fresh namespace has every port free, so each server keeps its default
// port, and its state (MariaDB's host cache and max_connect_errors, a
// standby's recovery) belongs to the one test that started it. Servers are
// stopped by pid when the test ends.
//
// Name lookups inside the namespace read only its own hosts file (Hosts),
// never a nameserver: a server that resolves its clients' addresses (MariaDB
// does, to count their connection errors) stays on the machine.
//
// Only _test files import testdb (internal/archtest fails otherwise).
package testdb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// startTimeout bounds a server's start, a loaded CI machine included.
const startTimeout = 90 * time.Second

// Server is one server process in a namespace of its own.
type Server struct {
	// Host is the namespace; dial the server from inside it (Dial) or from
	// a process run in it.
	Host *netlab.Host
	// Addr is the server's address on Host's loopback.
	Addr netip.AddrPort
	// Dir holds the server's data, socket and log.
	Dir  string
	cmd  *exec.Cmd
	log  string
	stop os.Signal
	done chan struct{} // closed when the process has exited and been reaped
}

// Dial connects to the server from inside its namespace, from source
// when it is valid (an address of the namespace's loopback: 127.0.0.2
// is a host other than "localhost" to a server).
func (s *Server) Dial(ctx context.Context, source netip.Addr) (net.Conn, error) {
	var c net.Conn
	err := s.Host.Do(func() (err error) {
		d := net.Dialer{}
		if source.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
		}
		c, err = d.DialContext(ctx, "tcp", s.Addr.String())
		return err
	})
	return c, err
}

// DialFunc dials from inside the namespace, from source when it is valid;
// it has the shape of probe.DialFunc.
func (s *Server) DialFunc(source netip.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := s.Host.Do(func() (err error) {
			d := net.Dialer{}
			if source.IsValid() {
				d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
			}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// Log returns what the server wrote to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// Stop stops the server by its pid (its stop signal, then SIGKILL after
// 30 s) and waits for it to exit; the test's end does it too.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(s.stop)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Exited reports whether the server has exited.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Require fails the test when a server's binary is missing in CI or as
// root, and skips it otherwise, as netlab.Require does for the lab.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	netlab.Require(t)
	for _, b := range bins {
		if _, err := lookBin(b); err != nil {
			if os.Getenv("CI") == "" && os.Geteuid() != 0 {
				t.Skipf("testdb: %v (skipped: not root and CI is not set)", err)
			}
			t.Fatalf("testdb: %v; scripts/test installs it", err)
		}
	}
}

// lookBin finds a server binary in PATH, /usr/sbin, or the newest
// PostgreSQL's bin directory.
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := "/usr/sbin/" + name; isExec(p) {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if p := filepath.Join(dirs[i], name); isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s in PATH, /usr/sbin or /usr/lib/postgresql/*/bin", name)
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// Hosts lays out the name lookups of processes run in h (with ip netns
// exec, as Host.Start runs them): its hosts file holds localhost and the
// names given, nsswitch reads only files, and resolv.conf names the
// namespace's own loopback. Call it before starting the server.
func Hosts(t testing.TB, h *netlab.Host, names map[netip.Addr]string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", h.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n::1 localhost\n")
	for a, n := range names {
		fmt.Fprintf(&hosts, "%s %s\n", a, n)
	}
	for f, text := range map[string]string{
		"hosts":         hosts.String(),
		"nsswitch.conf": "hosts: files\n",
		"resolv.conf":   "nameserver 127.0.0.1\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o644); err != nil {
			t.Fatalf("testdb: %v", err)
		}
	}
}

// waitFor polls ready until it holds or startTimeout passes, and fails the
// test with the server's log if it does not, or if the server exits first.
func (s *Server) waitFor(t testing.TB, what string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	pause := 10 * time.Millisecond
	for time.Now().Before(deadline) {
		if ready() {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("testdb: %s exited before it was ready (%v); its log:\n%s", what, s.cmd.ProcessState, tail(s.Log()))
		case <-time.After(pause):
		}
		pause = min(2*pause, 250*time.Millisecond)
	}
	t.Fatalf("testdb: %s not ready after %v; its log:\n%s", what, startTimeout, tail(s.Log()))
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// start runs args in h in the background, its output to logfile; stop is
// the signal that stops it. It is stopped by pid when the test ends.
func start(t testing.TB, h *netlab.Host, dir, logfile string, addr netip.AddrPort, stop os.Signal, args ...string) *Server {
	t.Helper()
	f, err := os.OpenFile(logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer f.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.Name()}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("testdb: start %s: %v", strings.Join(args, " "), err)
	}
	s := &Server{Host: h, Addr: addr, Dir: dir, cmd: cmd, log: logfile, stop: stop, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	return s
}

// run runs a command in h within a minute and returns its combined output.
func run(h *netlab.Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name()}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
