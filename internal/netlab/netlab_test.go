package netlab_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// namespaces lists the network namespaces on the machine.
func namespaces(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func TestHostsAreCreatedAndRemoved(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	var names []string
	t.Run("lab", func(t *testing.T) {
		lab := netlab.New(t)
		a, b := lab.Host("a"), lab.Host("b")
		lab.Link(a, b)
		lab.LinkV6(a, b)
		names = []string{a.Name(), b.Name()}
		if a.Name() == b.Name() || !strings.HasPrefix(a.Name(), "rl-") {
			t.Fatalf("namespace names %q, want distinct rl-* names", names)
		}
		have := namespaces(t)
		for _, n := range names {
			if !slices.Contains(have, n) {
				t.Errorf("namespace %s missing while the lab lives; have %v", n, have)
			}
		}
	})
	have := namespaces(t)
	for _, n := range names {
		if slices.Contains(have, n) {
			t.Errorf("namespace %s left behind after cleanup", n)
		}
	}
}

func TestLabsDoNotCollide(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	l1, l2 := netlab.New(t), netlab.New(t)
	if a, b := l1.Host("same"), l2.Host("same"); a.Name() == b.Name() {
		t.Fatalf("two labs both made namespace %s", a.Name())
	}
}

// echo accepts one connection on ln and echoes it back.
func echo(ln net.Listener) {
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
}

func roundTrip(t *testing.T, h *netlab.Host, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.Name(), err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo via %s: got %q, %v", addr, line, err)
	}
}

func TestLinkedHostsTalk(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b, c := lab.Host("a"), lab.Host("b"), lab.Host("c")
	a1, b1 := lab.Link(a, b)
	b2, c2 := lab.Link(b, c)
	a6, b6 := lab.LinkV6(a, b)
	for _, addr := range []netip.Addr{a1, b1, b2, c2} {
		if !netip.MustParsePrefix("198.18.0.0/15").Contains(addr) {
			t.Errorf("link address %v outside 198.18.0.0/15", addr)
		}
	}
	if netip.PrefixFrom(b1, 24).Masked() == netip.PrefixFrom(b2, 24).Masked() {
		t.Errorf("two links share a subnet: %v and %v", b1, b2)
	}
	if !netip.MustParsePrefix("fd00::/8").Contains(a6) || a6 == b6 {
		t.Errorf("v6 link addresses %v, %v", a6, b6)
	}
	extra := b.AddAddr(t, b1)
	for _, tc := range []struct {
		from *netlab.Host
		srv  *netlab.Host
		addr netip.Addr
	}{{a, b, b1}, {b, a, a1}, {c, b, b2}, {b, c, c2}, {a, b, b6}, {b, a, a6}, {a, b, extra}} {
		ln := tc.srv.Listen(t, "tcp", netip.AddrPortFrom(tc.addr, 0).String())
		echo(ln)
		roundTrip(t, tc.from, ln.Addr().String())
	}
	// a and c share no link and nobody routes: a cannot reach c.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(c2, 9).String()); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial c from a (no link, no route): %v, want ENETUNREACH", err)
	}
}

func TestLoopbackInsideHost(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	h := lab.Host("solo")
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln := h.Listen(t, "tcp", addr)
		echo(ln)
		roundTrip(t, h, ln.Addr().String())
	}
}

func TestNoDefaultRouteAndNothingInRoot(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b := lab.Host("a"), lab.Host("b")
	addr, _ := lab.Link(a, b)
	addr6, _ := lab.LinkV6(a, b)
	for _, fam := range []string{"-4", "-6"} {
		if out := a.Run(t, "ip", fam, "route", "show", "default"); strings.TrimSpace(out) != "" {
			t.Errorf("host has a default route (%s): %s", fam, out)
		}
	}
	root, err := exec.Command("ip", "addr").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range []netip.Addr{addr, addr6} {
		if strings.Contains(string(root), ad.String()+"/") {
			t.Errorf("lab address %v appears in the root namespace:\n%s", ad, root)
		}
	}
	// With no route, a dial outside the link fails before sending anything.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, dst := range []string{"198.19.255.1:80", "[fd00:ffff::1]:80"} {
		if _, err := a.DialContext(ctx, "tcp", dst); !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("dial %s: %v, want ENETUNREACH", dst, err)
		}
	}
}

func TestDoRunsInsideNamespace(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b := lab.Host("a"), lab.Host("b")
	lab.Link(a, b)
	var inside []net.Interface
	if err := a.Do(func() (err error) {
		inside, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	names := func(ifs []net.Interface) (n []string) {
		for _, i := range ifs {
			n = append(n, i.Name)
		}
		slices.Sort(n)
		return n
	}
	if got := names(inside); !slices.Equal(got, []string{"lo", "veth0"}) {
		t.Errorf("interfaces inside the host: %v, want [lo veth0]", got)
	}
	// The calling goroutine is back in the root namespace afterwards.
	outside, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(names(outside), names(inside)) {
		t.Errorf("still inside the namespace after Do: %v", names(outside))
	}
	want := errors.New("from fn")
	if err := a.Do(func() error { return want }); err != want {
		t.Errorf("Do returned %v, want fn's error unchanged", err)
	}
}

func TestFirewallAndRoutes(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b := lab.Host("a"), lab.Host("b")
	_, bAddr := lab.Link(a, b)
	a.Iptables(t, "-A", "OUTPUT", "-p", "tcp", "--dport", "7", "-j", "REJECT", "--reject-with", "tcp-reset")
	if out := a.Run(t, "iptables", "-S", "OUTPUT"); !strings.Contains(out, "--dport 7") {
		t.Errorf("iptables rule not inside the namespace:\n%s", out)
	}
	a.Nft(t, `table inet t {
	chain out {
		type filter hook output priority 0;
		tcp dport 8 drop
	}
}`)
	if out := a.Run(t, "nft", "list", "ruleset"); !strings.Contains(out, "dport 8 drop") {
		t.Errorf("nft rule not inside the namespace:\n%s", out)
	}
	a.AddRoute(t, "unreachable", "198.19.7.0/24")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := a.DialContext(ctx, "tcp", "198.19.7.1:80")
	if !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("dial through an unreachable route: %v, want EHOSTUNREACH", err)
	}
	if _, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(bAddr, 7).String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial port 7 against a tcp-reset rule: %v, want ECONNREFUSED", err)
	}
	a.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40001")
	if out := a.Run(t, "cat", "/proc/sys/net/ipv4/ip_local_port_range"); strings.Join(strings.Fields(out), " ") != "40000 40001" {
		t.Errorf("sysctl inside the host: %q", out)
	}
}

func TestUnownedAddressIsHostUnreachable(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b := lab.Host("a"), lab.Host("b")
	aAddr, _ := lab.Link(a, b)
	dst := lab.Unowned(t, aAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(dst, 80).String())
	if !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("dial unowned %v: %v, want EHOSTUNREACH", dst, err)
	}
}

func TestDialRejectsNames(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	h := lab.Host("a")
	if _, err := h.DialContext(t.Context(), "tcp", "localhost:80"); err == nil || !strings.Contains(err.Error(), "not a name") {
		t.Errorf("dial by name: %v, want a refusal to look names up", err)
	}
}

func TestResolverStaysInLab(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b := lab.Host("a"), lab.Host("b")
	_, bAddr := lab.Link(a, b)
	// A nameserver address where nothing listens: the query is refused by b.
	r := a.Resolver(netip.AddrPortFrom(bAddr, 53))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := r.LookupNetIP(ctx, "ip4", "db.reach.test")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("lookup: %v, want a *net.DNSError", err)
	}
	if !strings.Contains(err.Error(), bAddr.String()) {
		t.Errorf("lookup error %q does not name the lab nameserver %v", err, bAddr)
	}
}

func TestStartedProcessesAreKilled(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	var pid int
	t.Run("lab", func(t *testing.T) {
		lab := netlab.New(t)
		h := lab.Host("a")
		pid = h.Start(t, "sleep", "600").Process.Pid
		// The process runs inside the namespace once ip has switched into it.
		var out []byte
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			out, err = exec.Command("ip", "netns", "pids", h.Name()).CombinedOutput()
			if err != nil || slices.Contains(strings.Fields(string(out)), strconv.Itoa(pid)) {
				break
			}
		}
		if err != nil || !slices.Contains(strings.Fields(string(out)), strconv.Itoa(pid)) {
			t.Errorf("pid %d not in namespace %s: %q %v", pid, h.Name(), out, err)
		}
	})
	p, err := os.FindProcess(pid)
	if err == nil {
		err = p.Signal(syscall.Signal(0))
	}
	if !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("process %d still exists after cleanup (kill -0: %v)", pid, err)
	}
}

// The child half of TestCleanupAfterFailureAndPanic and TestSweepAbandonedLabs:
// it makes labs, prints their namespaces, and then fails, panics or dies.
func TestChild(t *testing.T) {
	mode := os.Getenv("NETLAB_CHILD")
	if mode == "" {
		t.Skip("run by other tests in a child process")
	}
	outer := netlab.New(t)
	println("NS", outer.Host("outer").Name())
	t.Run("fatal", func(t *testing.T) {
		lab := netlab.New(t)
		println("NS", lab.Host("fatal").Name())
		t.Fatal("failing on purpose")
	})
	t.Run("die", func(t *testing.T) {
		lab := netlab.New(t)
		println("NS", lab.Host("inner").Name())
		switch mode {
		case "panic":
			panic("boom on purpose")
		case "exit":
			os.Exit(3) // no cleanup runs: as if killed
		}
	})
}

// child runs TestChild in a new test process and returns the namespaces it
// printed and its output.
func child(t *testing.T, mode string) ([]string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NETLAB_CHILD="+mode)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child (%s) succeeded; want it to fail:\n%s", mode, out)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if ns, ok := strings.CutPrefix(strings.TrimSpace(line), "NS "); ok {
			names = append(names, ns)
		}
	}
	if len(names) != 3 {
		t.Fatalf("child (%s) printed %d namespaces, want 3:\n%s", mode, len(names), out)
	}
	return names, string(out)
}

func TestCleanupAfterFailureAndPanic(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	names, out := child(t, "panic")
	if !strings.Contains(out, "boom on purpose") {
		t.Errorf("child did not panic:\n%s", out)
	}
	have := namespaces(t)
	for _, n := range names {
		if slices.Contains(have, n) {
			t.Errorf("namespace %s left behind by a failed or panicking test", n)
		}
	}
}

func TestSweepAbandonedLabs(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	names, _ := child(t, "exit")
	// The child printed each name after making it, and exited without
	// cleanup. Any New sweeps; another test's New may be sweeping them right
	// now (then ours skips them), so wait for it, within bounds.
	netlab.New(t)
	have := namespaces(t)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && slices.ContainsFunc(names, func(n string) bool { return slices.Contains(have, n) }); time.Sleep(20 * time.Millisecond) {
		have = namespaces(t)
	}
	for _, n := range names {
		if slices.Contains(have, n) {
			t.Errorf("abandoned namespace %s not swept by New", n)
		}
	}
}

func TestServeDNS(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b := lab.Host("a"), lab.Host("b")
	_, bAddr := lab.Link(a, b)
	db4, db6 := netip.MustParseAddr("198.18.200.7"), netip.MustParseAddr("fd00::7")
	ns := b.ServeDNS(t, bAddr, map[string][]netip.Addr{"DB.reach.test": {db4, db6}, "v4only.reach.test.": {db4}})
	r := a.Resolver(ns)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		network, name string
		want          []netip.Addr
	}{
		{"ip", "db.reach.test", []netip.Addr{db4, db6}},
		{"ip4", "db.reach.test", []netip.Addr{db4}},
		{"ip6", "db.reach.test.", []netip.Addr{db6}},
		{"ip", "v4only.reach.test", []netip.Addr{db4}},
	} {
		got, err := r.LookupNetIP(ctx, tc.network, tc.name)
		slices.SortFunc(got, netip.Addr.Compare)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("lookup %s %s: %v, %v; want %v", tc.network, tc.name, got, err, tc.want)
		}
	}
	_, err := r.LookupNetIP(ctx, "ip", "missing.reach.test")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("lookup of a missing name: %v, want NXDOMAIN (IsNotFound)", err)
	}
}

// BenchmarkLinkedPair measures what a typical lab test pays before it starts:
// a lab with two hosts and a link (the cleanup runs after the timing).
func BenchmarkLinkedPair(b *testing.B) {
	netlab.Require(b)
	for b.Loop() {
		lab := netlab.New(b)
		lab.Link(lab.Host("a"), lab.Host("b"))
	}
}
