package sockets

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// helperEnv makes the test binary act as a child process that listens on
// the address in helperAddrEnv (default 127.0.0.1:0), prints the port, and
// accepts until killed.
const (
	helperEnv     = "REACH_SOCKETS_TEST_HELPER"
	helperAddrEnv = "REACH_SOCKETS_TEST_ADDR"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "listen" {
		addr := cmp.Or(os.Getenv(helperAddrEnv), "127.0.0.1:0")
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(1)
			}
			c.Close()
		}
	}
	if os.Getenv(helperEnv) == "listall" {
		tab, err := ListAllNamespaces(context.Background(), Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(tab)
		os.Exit(0)
	}
	if os.Getenv(helperEnv) == "peers" {
		ps, err := ListPeers(context.Background(), Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(ps)
		os.Exit(0)
	}
	if os.Getenv(helperEnv) == "list" {
		port, _ := strconv.ParseUint(os.Getenv(helperAddrEnv), 10, 16)
		tab, err := List(context.Background(), Options{Port: uint16(port)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(tab)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startListener starts a child process that listens on a loopback port and
// returns it with the port; the child is killed at the end of the test.
func startListener(t *testing.T) (*exec.Cmd, uint16) {
	t.Helper()
	return startListenerWith(t, "127.0.0.1:0", nil)
}

// startListenerWith is startListener on addr, with the child's attributes
// (e.g. a new network namespace) set by attr.
func startListenerWith(t *testing.T, addr string, attr *syscall.SysProcAttr) (*exec.Cmd, uint16) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=listen", helperAddrEnv+"="+addr)
	cmd.SysProcAttr = attr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper did not report its port: %v", err)
	}
	port, err := strconv.ParseUint(strings.TrimSpace(line), 10, 16)
	if err != nil {
		t.Fatalf("helper printed %q", line)
	}
	return cmd, uint16(port)
}

func mustList(t *testing.T, opt Options) Table {
	t.Helper()
	tab, err := List(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestListOwnListener(t *testing.T) {
	addr := testnet.AddrPort(testnet.Listen(t))
	tab := mustList(t, Options{Port: addr.Port()})
	if tab.Source != "netlink" {
		t.Errorf("source %q, want netlink (warnings %q)", tab.Source, tab.Warnings)
	}
	if len(tab.Sockets) != 1 {
		t.Fatalf("got %d sockets on port %d, want 1: %v", len(tab.Sockets), addr.Port(), tab.Sockets)
	}
	s := tab.Sockets[0]
	if s.Proto != "tcp" || s.Local != addr || s.State != StateListen || s.Inode == 0 || s.SendQ == 0 {
		t.Errorf("socket %v, want tcp LISTEN on %v with an inode and a backlog", s, addr)
	}
	if len(s.Processes) != 1 || s.Processes[0].PID != os.Getpid() || s.Processes[0].UID != os.Getuid() {
		t.Fatalf("processes %+v, want only this test (pid %d)", s.Processes, os.Getpid())
	}
	if s.ProcessState != "running" && s.ProcessState != "sleeping" {
		t.Errorf("process state %q, want running or sleeping", s.ProcessState)
	}
	if !strings.Contains(s.Owner(), fmt.Sprintf("(pid %d)", os.Getpid())) {
		t.Errorf("Owner() = %q", s.Owner())
	}
}

func TestListIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	socks, err := Listening(context.Background(), addr.Port())
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 1 || socks[0].Proto != "tcp6" || socks[0].Local != addr {
		t.Fatalf("got %v, want one tcp6 socket on %v", socks, addr)
	}
}

// TestSourcesAgree checks that netlink and /proc/net/tcp report the same
// sockets. Only our own listeners are compared: other tests on this host
// open and close sockets between the two reads.
func TestSourcesAgree(t *testing.T) {
	var ports []uint16
	for _, a := range []string{"127.0.0.1:0", "127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			continue // no IPv6
		}
		defer ln.Close()
		ports = append(ports, uint16(ln.Addr().(*net.TCPAddr).Port))
	}
	ours := func(source bool) []string {
		tab, err := list(context.Background(), Options{All: true, PID: os.Getpid()}, source)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range tab.Sockets {
			if slices.Contains(ports, s.Local.Port()) {
				s.SendQ = 0    // procfs does not show the backlog
				var pids []int // not the state: this process runs, then sleeps
				for _, p := range s.Processes {
					pids = append(pids, p.PID)
				}
				got = append(got, fmt.Sprintf("%s pids=%v", s, pids))
			}
		}
		return got
	}
	nl, pf := ours(true), ours(false)
	if len(nl) != len(ports) {
		t.Fatalf("netlink found %d of our %d listeners: %q", len(nl), len(ports), nl)
	}
	if !slices.Equal(nl, pf) {
		t.Fatalf("netlink:\n%s\nprocfs:\n%s", strings.Join(nl, "\n"), strings.Join(pf, "\n"))
	}
}

func TestFilters(t *testing.T) {
	ln := testnet.Listen(t)
	a := testnet.AddrPort(ln)
	child, b := startListener(t)
	conn, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	accepted, err := ln.Accept() // until accepted, no process holds the server side
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	me, them := os.Getpid(), child.Process.Pid
	tests := []struct {
		name string
		opt  Options
		want []uint16 // local ports among a, b and the client side of conn
	}{
		{"port", Options{Port: a.Port()}, []uint16{a.Port()}},
		{"pid", Options{PID: them}, []uint16{b}},
		{"pid and port mismatch", Options{PID: them, Port: a.Port()}, nil},
		{"process", Options{Process: strings.ToUpper(commOf(t, them)), Port: b}, []uint16{b}},
		{"all of ours", Options{PID: me, All: true}, []uint16{a.Port(), a.Port(), uint16(conn.LocalAddr().(*net.TCPAddr).Port)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint16
			for _, s := range mustList(t, tt.opt).Sockets {
				if p := s.Local.Port(); p == a.Port() || p == b || s.Remote.Port() == a.Port() {
					got = append(got, p)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("ports %v, want %v", got, want)
			}
		})
	}
}

func commOf(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestStoppedProcess(t *testing.T) {
	child, port := startListener(t)
	pid := child.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The state changes once the signal is delivered; wait for it, boundedly.
	var state string
	if !testnet.Poll(5*time.Second, func() bool {
		socks, err := Listening(context.Background(), port)
		if err != nil {
			t.Fatal(err)
		}
		if len(socks) != 1 || len(socks[0].Processes) != 1 || socks[0].Processes[0].PID != pid {
			t.Fatalf("got %v, want one socket owned by pid %d", socks, pid)
		}
		state = socks[0].ProcessState
		return state == "stopped"
	}) {
		t.Fatalf("process state %q 5s after SIGSTOP, want stopped", state)
	}
	syscall.Kill(pid, syscall.SIGCONT)
}

// TestFullBacklog fills the accept queue of a listener with backlog 1 and
// checks that recv-q (queued connections) exceeds send-q (the backlog).
func TestFullBacklog(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(sa.(*syscall.SockaddrInet4).Port)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()
	// The kernel queues backlog+1 connections; both dials complete.
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var recvQ uint32
	if !testnet.Poll(5*time.Second, func() bool {
		socks, err := Listening(context.Background(), port)
		if err != nil {
			t.Fatal(err)
		}
		if len(socks) != 1 {
			t.Fatalf("got %v, want one listener", socks)
		}
		s := socks[0]
		if s.SendQ != 1 {
			t.Fatalf("send-q %d, want the backlog 1", s.SendQ)
		}
		recvQ = s.RecvQ
		return s.RecvQ > s.SendQ
	}) {
		t.Fatalf("recv-q %d after 5s, want 2 queued connections", recvQ)
	}
}

func TestIsLocal(t *testing.T) {
	prefixes, err := Addresses()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Addr().IsLoopback() }) {
		t.Fatalf("Addresses() = %v, want the loopback address", prefixes)
	}
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true}, {"127.3.2.1", true}, {"::1", true}, {"0.0.0.0", true},
		{"::ffff:127.0.0.1", true},
		{"198.51.100.7", false}, // TEST-NET-2: never assigned to a real host
	} {
		got, err := IsLocal(netip.MustParseAddr(tt.addr))
		if err != nil || got != tt.want {
			t.Errorf("IsLocal(%s) = %v, %v; want %v", tt.addr, got, err, tt.want)
		}
	}
	for _, p := range prefixes {
		if ok, err := IsLocal(p.Addr()); !ok || err != nil {
			t.Errorf("IsLocal(%v) = %v, %v for an interface address", p.Addr(), ok, err)
		}
	}
}

func TestListCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := List(ctx, Options{}); err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestUnprivileged lists, as user nobody, a port this (root) process listens
// on: the owner is invisible and the warning says why.
func TestUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	addr := testnet.AddrPort(testnet.Listen(t))
	out := runAsNobody(t, helperEnv+"=list", helperAddrEnv+"="+strconv.Itoa(int(addr.Port())))
	var tab Table
	if err := json.Unmarshal(out, &tab); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(tab.Sockets) != 1 || tab.Sockets[0].Local != addr || len(tab.Sockets[0].Processes) != 0 {
		t.Fatalf("as nobody got %v, want %v without owner", tab.Sockets, addr)
	}
	if got := tab.Sockets[0].Owner(); got != "unknown process (uid 0)" {
		t.Errorf("Owner() = %q", got)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "no owner found for 1 socket:") || !strings.Contains(tab.Warnings[0], "run as root") {
		t.Errorf("warnings %q, want one saying to run as root", tab.Warnings)
	}
}

// runAsNobody runs a copy of the test binary as user nobody, with env added,
// and returns its standard output.
func runAsNobody(t *testing.T, env ...string) []byte {
	t.Helper()
	return runAsNobodyIn(t, nil, env...)
}

// runAsNobodyIn is runAsNobody in lab host h's network namespace (its own
// when h is nil): the child is forked from a thread inside it.
func runAsNobodyIn(t *testing.T, h *netlab.Host, env ...string) []byte {
	t.Helper()
	// nobody must be able to execute a copy of the test binary.
	dir := t.TempDir()
	bin := dir + "/sockets.test"
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const nobody = 65534
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Stderr = os.Stderr
	var out []byte
	run := func() (err error) { out, err = cmd.Output(); return err }
	if h != nil {
		err = h.Do(run)
	} else {
		err = run()
	}
	if err != nil {
		t.Fatalf("running as nobody: %v", err)
	}
	return out
}

// TestNoFDLeak lists repeatedly and checks no file descriptor stays open.
func TestNoFDLeak(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	addr := testnet.AddrPort(testnet.Listen(t))
	opt := Options{Port: addr.Port(), PID: os.Getpid()}
	mustList(t, opt) // warm up: lazily opened runtime files
	before := count()
	for range 3 { // few: the procfs source reads every TIME_WAIT socket of the host
		mustList(t, opt)
		if _, err := list(context.Background(), opt, false); err != nil {
			t.Fatal(err)
		}
	}
	if after := count(); after > before {
		t.Fatalf("%d open files before, %d after 6 lists", before, after)
	}
}
