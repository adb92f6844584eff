package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/server"
	"github.com/reach-tools/reach/sockets"
)

// childEnv makes the test binary run runChild instead of the tests: used to
// bind as an unprivileged user in a fresh network namespace.
const childEnv = "REACH_SERVER_TEST_CHILD"

func TestMain(m *testing.M) {
	if child := os.Getenv(childEnv); child != "" {
		runChild(child)
		return
	}
	os.Exit(m.Run())
}

// childResult is what the child reports about its bind attempt.
type childResult struct {
	Err       string       `json:"err"`
	Cause     server.Cause `json:"cause"`
	IsEACCES  bool         `json:"is_eacces"`
	UID       int          `json:"uid"`
	PortStart int          `json:"port_start"`
	Fix       []string     `json:"fix"`
}

func runChild(kind string) {
	if kind != "privileged" {
		fmt.Fprintf(os.Stderr, "unknown child %q\n", kind)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := server.Listen(ctx, server.Config{Listen: []string{"0.0.0.0:80"}})
	if err == nil {
		srv.Close()
	}
	res := childResult{Err: fmt.Sprint(err), IsEACCES: errors.Is(err, syscall.EACCES)}
	var be *server.BindError
	if errors.As(err, &be) {
		res.Cause, res.UID, res.PortStart, res.Fix = be.Cause, be.UID, be.PortStart, be.Fix()
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// requireRoot skips when not root, unless in CI, where the test must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root")
	}
}

func TestPrivilegedPort(t *testing.T) {
	requireRoot(t)
	// nobody must be able to execute the test binary: copy it out of the
	// private go-build directory.
	dir, err := os.MkdirTemp("", "reach-server-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "server.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), childEnv+"=privileged")
	// A fresh network namespace has its own ip_unprivileged_port_start
	// (1024) and nothing on port 80, whatever this host is configured with.
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v, output %q", err, out)
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	if res.Cause != server.CausePrivileged || !res.IsEACCES || res.UID != 65534 || res.PortStart != 1024 {
		t.Fatalf("child got %+v, want cause privileged, EACCES, uid 65534, port start 1024", res)
	}
	if !strings.Contains(res.Err, "permission denied") || !strings.Contains(res.Err, "CAP_NET_BIND_SERVICE") {
		t.Errorf("message %q", res.Err)
	}
	fix := strings.Join(res.Fix, "\n")
	for _, want := range []string{"port of 1024 or more", "setcap cap_net_bind_service=+ep", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "sysctl net.ipv4.ip_unprivileged_port_start=80"} {
		if !strings.Contains(fix, want) {
			t.Errorf("fix lacks %q:\n%s", want, fix)
		}
	}
}

// checkHeldByUs checks that an in-use BindError names this process.
func checkHeldByUs(t *testing.T, be *server.BindError) {
	t.Helper()
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	cmd, pid := strings.TrimSpace(string(comm)), os.Getpid()
	found := false
	for _, s := range be.Holders {
		for _, p := range s.Processes {
			found = found || (p.PID == pid && p.Command == cmd)
		}
	}
	if !found {
		t.Fatalf("holders %v do not include %s (pid %d); HolderErr %v", be.Holders, cmd, pid, be.HolderErr)
	}
	want := fmt.Sprintf("held by %s (pid %d)", cmd, pid)
	if !strings.Contains(be.Error(), want) {
		t.Errorf("message %q lacks %q", be.Error(), want)
	}
	if fix := strings.Join(be.Fix(), "\n"); !strings.Contains(fix, "kill "+strconv.Itoa(pid)) {
		t.Errorf("fix %q does not say how to stop it", fix)
	}
}

// ourListening lists the addresses this process listens on.
func ourListening(t *testing.T) []netip.AddrPort {
	t.Helper()
	tab, err := sockets.List(context.Background(), sockets.Options{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.AddrPort
	for _, s := range tab.Sockets {
		out = append(out, s.Local)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// checkNotListening checks that nothing listens on port any more.
func checkNotListening(t *testing.T, port uint16) {
	t.Helper()
	socks, err := sockets.Listening(context.Background(), port)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 0 {
		t.Fatalf("port %d still listening: %v", port, socks)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own fd
}

func TestAllOrNone(t *testing.T) {
	held := testnet.Listen(t)
	before, fds := ourListening(t), countFDs(t)

	_, err := server.Listen(context.Background(), server.Config{Listen: []string{"127.0.0.1:0", "127.0.0.1:0", held.Addr().String()}})
	var be *server.BindError
	if !errors.As(err, &be) || be.Addr != held.Addr().String() || be.Cause != server.CauseInUse {
		t.Fatalf("Listen = %v, want in-use on %s", err, held.Addr())
	}
	checkHeldByUs(t, be)
	if after := ourListening(t); !slices.Equal(after, before) {
		t.Fatalf("listening before %v, after a failed Listen %v: the first listeners were not closed", before, after)
	}
	if n := countFDs(t); n != fds {
		t.Errorf("%d fds open before, %d after a failed Listen", fds, n)
	}
}

// TestAcceptBackoff exhausts the process's file descriptors so accept fails
// with EMFILE, checks that the server backs off (5 ms doubling) instead of
// spinning, and that it serves the waiting client once fds are free again.
func TestAcceptBackoff(t *testing.T) {
	r := start(t, server.Config{})
	addr := r.addr(0)

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		highest = max(highest, n)
	}
	lowered := old
	lowered.Cur = uint64(highest + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	var fillers []*os.File
	release := func() {
		for _, f := range fillers {
			f.Close()
		}
		fillers = nil
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
	defer release()
	limit := int(lowered.Cur)
	for range limit + 1 { // bounded: fewer fds than the limit are free
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fillers = append(fillers, f)
	}
	if len(fillers) == 0 || len(fillers) > limit {
		t.Fatalf("could not exhaust fds: opened %d (highest fd %d, limit %+v)", len(fillers), highest, lowered)
	}
	// Free exactly one fd for the client; the server's accept then has none.
	fillers[len(fillers)-1].Close()
	fillers = fillers[:len(fillers)-1]
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const want = 5
	recs := r.log.wait(t, "accept failed; backing off", want)
	release()

	delay := 5 * time.Millisecond
	for i, rec := range recs[:want] {
		if got := attr(rec, "retry_in").Duration(); got != delay {
			t.Errorf("accept error %d: retry_in %v, want %v", i, got, delay)
		}
		if i > 0 {
			if gap := rec.Time.Sub(recs[i-1].Time); gap < attr(recs[i-1], "retry_in").Duration() {
				t.Errorf("accept error %d came %v after the previous one, before its back-off", i, gap)
			}
		}
		if err := attr(rec, "err").String(); !strings.Contains(err, "too many open files") {
			t.Errorf("accept error %d: %s", i, err)
		}
		delay *= 2
	}
	if hint := attr(recs[0], "hint").String(); !strings.Contains(hint, "ulimit -n") {
		t.Errorf("hint %q", hint)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	roundTrip(t, c, "served after EMFILE")
	if st := r.srv.Stats(); st.AcceptErrors < want || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestNoLeaks serves 10,000 connections and checks that no goroutine or fd
// is left once Serve returns.
func TestNoLeaks(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1000
	}
	goroutines, fds := runtime.NumGoroutine(), countFDs(t)

	srv, err := server.Listen(context.Background(), server.Config{
		Listen: []string{"127.0.0.1:0"}, MaxConns: 64, IdleTimeout: time.Minute, Drain: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	addr := srv.Addrs()[0].String()

	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 16)
			for i := w; i < n; i += workers {
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(20 * time.Second))
				msg := fmt.Sprintf("conn %d", i)
				_, err = io.WriteString(c, msg)
				if err == nil {
					_, err = io.ReadFull(c, buf[:len(msg)])
				}
				c.Close()
				if err != nil || string(buf[:len(msg)]) != msg {
					errs <- fmt.Errorf("conn %d: %q, %v", i, buf[:len(msg)], err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Accepted != uint64(n) || st.Active != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v after %d connections", st, n)
	}
	// Goroutines that signalled completion may take a moment to exit.
	testnet.Poll(10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines && countFDs(t) <= fds })
	if g, f := runtime.NumGoroutine(), countFDs(t); g > goroutines || f > fds {
		buf := make([]byte, 1<<20)
		t.Fatalf("after %d connections: %d goroutines (was %d), %d fds (was %d)\n%s", n, g, goroutines, f, fds, buf[:runtime.Stack(buf, true)])
	}
}

func TestGracefulDrain(t *testing.T) {
	r := start(t, server.Config{Drain: time.Minute})
	addr := r.addr(0)
	port := r.srv.Addrs()[0].Port()
	c := dial(t, addr)
	roundTrip(t, c, "before")

	r.cancel()
	r.log.wait(t, "shutting down: no longer accepting", 1)
	checkNotListening(t, port)
	if c2, err := net.DialTimeout("tcp", addr, 10*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		if c2 != nil {
			c2.Close()
		}
		t.Fatalf("dial during drain: %v, want connection refused", err)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Serve returned %v while a connection was open", err)
	default:
	}
	roundTrip(t, c, "in flight") // the open connection is still served
	c.CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := len(r.log.records("drain time over: closed open connections")); n != 0 {
		t.Error("connections were force-closed although they finished")
	}
}

func TestBindInUse(t *testing.T) {
	held := testnet.Listen(t)
	addr := held.Addr().String()

	_, err := server.Listen(context.Background(), server.Config{Listen: []string{addr}})
	var be *server.BindError
	if !errors.As(err, &be) || be.Cause != server.CauseInUse {
		t.Fatalf("Listen(%s) = %v, want a BindError with cause in-use", addr, err)
	}
	if !errors.Is(err, syscall.EADDRINUSE) || be.Errno != syscall.EADDRINUSE {
		t.Errorf("errors.Is(err, EADDRINUSE) false or Errno %v", be.Errno)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("no *net.OpError in the chain of %v", err)
	}
	checkHeldByUs(t, be)
}

// A wildcard listen (":PORT", no host) on a port held on loopback is
// explained like any other: the error names the holder, and its pid once
// although it holds the port on two addresses (when the host has IPv6).
func TestBindInUseWildcard(t *testing.T) {
	held := testnet.Listen(t)
	port := held.Addr().(*net.TCPAddr).Port
	if held6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port)); err == nil {
		defer held6.Close()
	}
	addr := fmt.Sprintf(":%d", port)

	_, err := server.Listen(context.Background(), server.Config{Listen: []string{addr}})
	var be *server.BindError
	if !errors.As(err, &be) || be.Cause != server.CauseInUse || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen(%s) = %v, want a BindError with cause in-use", addr, err)
	}
	checkHeldByUs(t, be)
	if fix := strings.Join(be.Fix(), "\n"); !strings.Contains(fix, "(kill "+strconv.Itoa(os.Getpid())+")") {
		t.Errorf("fix does not say to kill our pid, once:\n%s", fix)
	}
}

// Two --listen addresses of one server that overlap (a wildcard and a
// specific address on the same port) fail with in-use. The holder is the
// server's own earlier listener, closed again by then: the error used to
// send people looking for a container in another network namespace.
func TestBindOverlapsOwnListener(t *testing.T) {
	port := testnet.ClosedPort(t).Port()
	for _, listen := range [][]string{
		{fmt.Sprintf(":%d", port), fmt.Sprintf("127.0.0.1:%d", port)},
		{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("0.0.0.0:%d", port)},
		{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:0%d", port)},
	} {
		_, err := server.Listen(context.Background(), server.Config{Listen: listen})
		var be *server.BindError
		if !errors.As(err, &be) || be.Cause != server.CauseInUse || be.Addr != listen[1] {
			t.Fatalf("Listen(%q) = %v, want in-use on %s", listen, err, listen[1])
		}
		if be.Overlaps != listen[0] || !strings.Contains(be.Error(), "overlaps "+listen[0]) {
			t.Errorf("Listen(%q): Overlaps %q, error %q; want it to name %s", listen, be.Overlaps, be.Error(), listen[0])
		}
		if fix := strings.Join(be.Fix(), "\n"); !strings.Contains(fix, "only one of") || strings.Contains(fix, "namespace") {
			t.Errorf("Listen(%q): fix %q, want: give only one of them", listen, fix)
		}
	}
}

// A port held by a socket that is bound but not listening (a program that
// bound and has not called listen yet, or a client that bound its source
// port) is named like a listener, with its state; the error said no holder
// was visible although reach ports --all shows it.
func TestBindInUseNotListening(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)

	_, err = server.Listen(context.Background(), server.Config{Listen: []string{addr}})
	var be *server.BindError
	if !errors.As(err, &be) || be.Cause != server.CauseInUse {
		t.Fatalf("Listen(%s) = %v, want a BindError with cause in-use", addr, err)
	}
	checkHeldByUs(t, be)
	if !strings.Contains(be.Error(), "not listening (state CLOSE)") {
		t.Errorf("message %q does not say the holder is not listening", be.Error())
	}
}
