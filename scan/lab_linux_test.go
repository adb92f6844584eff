package scan_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/scan"
)

// portOf is the port ln listens on.
func portOf(ln net.Listener) uint16 { return testnet.AddrPort(ln).Port() }

// closedPort returns a port nothing listens on in h: one it listened on and closed.
func closedPort(t testing.TB, h *netlab.Host, addr string) uint16 {
	t.Helper()
	return testnet.Closed(h.Listen(t, "tcp", net.JoinHostPort(addr, "0"))).Port()
}

func allPorts() []uint16 {
	ps := make([]uint16, 0, 65535)
	for p := 1; p <= 65535; p++ {
		ps = append(ps, uint16(p))
	}
	return ps
}

// labEngine is the engine the lab's scans run on; TestPortableEngineLab
// runs the exactness tests again with scan.EnginePortable.
var labEngine = scan.EngineDefault

func scanIn(t testing.TB, h *netlab.Host, targets []scan.Target, opt scan.Options) *scan.Report {
	t.Helper()
	opt.RunIn = h.Do
	if opt.Engine == scan.EngineDefault {
		opt.Engine = labEngine
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := scan.Scan(ctx, targets, opt)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return rep
}

func target(a netip.Addr) []scan.Target { return []scan.Target{{Addr: a}} }

// byState maps port -> state+reason for one host.
func byState(h scan.Host) map[uint16]string {
	m := map[uint16]string{}
	for _, p := range h.Ports {
		m[p.Port] = string(p.State) + "/" + p.Reason
	}
	return m
}

func openSet(h scan.Host) []uint16 {
	var out []uint16
	for _, p := range h.Ports {
		if p.State == scan.Open {
			out = append(out, p.Port)
		}
	}
	return out
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A full scan of a namespace's loopback (IPv4 and IPv6) finds exactly the
// ports we listen on, every time: the self-connect trap (a connect in the
// ephemeral range that picks its destination port as source) must never
// show up as open.
func TestLoopbackFullRangeExact(t *testing.T) {
	lab := netlab.New(t)
	h := lab.Host("lo")
	want := map[netip.Addr][]uint16{}
	lo4, lo6 := netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()
	for range 25 {
		want[lo4] = append(want[lo4], portOf(h.Listen(t, "tcp", "127.0.0.1:0")))
	}
	for range 3 {
		want[lo6] = append(want[lo6], portOf(h.Listen(t, "tcp6", "[::1]:0")))
	}
	slices.Sort(want[lo4])
	slices.Sort(want[lo6])
	fds := openFDs(t)
	runs := 3
	if testing.Short() {
		runs = 1
	}
	selfConnects := 0
	for run := range runs {
		rep := scanIn(t, h, []scan.Target{{Addr: lo4}, {Addr: lo6}}, scan.Options{Ports: allPorts()})
		if len(rep.Hosts) != 2 {
			t.Fatalf("run %d: %d hosts in report", run, len(rep.Hosts))
		}
		for _, host := range rep.Hosts {
			n := len(want[host.Addr])
			if got := openSet(host); !slices.Equal(got, want[host.Addr]) {
				t.Fatalf("run %d: %v open = %v, want %v", run, host.Addr, got, want[host.Addr])
			}
			if host.State != scan.HostUp || host.Counts != (scan.Counts{Open: n, Closed: 65535 - n}) || len(host.Ports) != 65535 {
				var odd []string
				for _, p := range host.Ports {
					if p.State == scan.Filtered {
						odd = append(odd, fmt.Sprintf("%d %s/%s tries %d rtt %v errno %d", p.Port, p.State, p.Reason, p.Tries, p.RTT, p.Errno))
					}
				}
				t.Fatalf("run %d: %v: host %s counts %+v ports %d; filtered: %v", run, host.Addr, host.State, host.Counts, len(host.Ports), odd)
			}
			for _, p := range host.Ports {
				if p.Reason == scan.ReasonSelfConnect {
					selfConnects++
					if p.State != scan.Closed || p.Class != probe.Refused {
						t.Fatalf("self-connect reported as %+v", p)
					}
				}
			}
		}
		t.Logf("run %d: %v, %d probes", run, rep.Elapsed, rep.Probes)
	}
	t.Logf("self-connects seen and reported closed: %d", selfConnects)
	if got := openFDs(t); got > fds {
		t.Fatalf("fd leak: %d open before, %d after", fds, got)
	}
}

// Each firewall answer maps to nmap's state and reason.
func TestFirewallStates(t *testing.T) {
	pair := netlab.New(t).Pair()
	c, s, saddr := pair.Client, pair.Server, pair.ServerAddr
	listen := func() uint16 { return portOf(s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0"))) }
	open1, open2 := listen(), listen()
	drop, reset, admin, portUnreach, hostUnreach := listen(), listen(), listen(), listen(), listen()
	closed := closedPort(t, s, saddr.String())
	rule := func(p uint16, args ...string) {
		s.Iptables(t, append([]string{"-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(p)), "-j"}, args...)...)
	}
	rule(drop, "DROP")
	rule(reset, "REJECT", "--reject-with", "tcp-reset")
	rule(admin, "REJECT", "--reject-with", "icmp-admin-prohibited")
	rule(portUnreach, "REJECT", "--reject-with", "icmp-port-unreachable")
	rule(hostUnreach, "REJECT", "--reject-with", "icmp-host-unreachable")
	want := map[uint16]string{
		open1:       "open/syn-ack",
		open2:       "open/syn-ack",
		drop:        "filtered/no-response",
		reset:       "closed/conn-refused",
		admin:       "filtered/admin-prohibited",
		portUnreach: "closed/port-unreach",
		hostUnreach: "filtered/host-unreach", // from the target itself: the host is up
		closed:      "closed/conn-refused",
	}
	rep := scanIn(t, c, target(saddr), scan.Options{Ports: slices.Collect(maps.Keys(want))})
	host := rep.Hosts[0]
	if got := byState(host); !maps.Equal(got, want) {
		t.Fatalf("states:\n got %v\nwant %v", got, want)
	}
	if host.State != scan.HostUp {
		t.Fatalf("host state %s, want up", host.State)
	}
	for _, p := range host.Ports {
		wantClass := map[string]probe.Class{"open/syn-ack": probe.Open, "closed/conn-refused": probe.Refused, "closed/port-unreach": probe.Refused,
			"filtered/no-response": probe.Timeout, "filtered/admin-prohibited": probe.HostUnreachable, "filtered/host-unreach": probe.HostUnreachable}[want[p.Port]]
		if p.Class != wantClass {
			t.Errorf("port %d (%s): class %s, want %s", p.Port, want[p.Port], p.Class, wantClass)
		}
		if p.Port == drop && p.Tries != 1+scan.DefaultRetries {
			t.Errorf("dropped port tried %d times, want %d", p.Tries, 1+scan.DefaultRetries)
		}
		if p.Port == admin && p.From != saddr {
			t.Errorf("admin-prohibited from %v, want %v", p.From, saddr)
		}
	}
}

// On loopback the engine first decides each port inside one blocking
// connect(); a host that makes that connect wait (here: DROP rules on lo) is
// probed without blocking from then on. Every firewall answer must still come
// out as on a link, for both families, with dropped ports among the first
// probes and the last. The fixed port ranges sit below the ephemeral range
// (32768-60999), so they can hold neither a listener's port nor one of the
// scanner's own source ports (whose replies a DROP rule would drop too).
func TestLoopbackFirewallStates(t *testing.T) {
	for _, fam := range []struct {
		name, addr, iptables, admin, portUnreach string
	}{
		{"ipv4", "127.0.0.1", "iptables", "icmp-admin-prohibited", "icmp-port-unreachable"},
		{"ipv6", "::1", "ip6tables", "icmp6-adm-prohibited", "icmp6-port-unreachable"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			lab := netlab.New(t)
			h := lab.Host("lo")
			listen := func() uint16 { return portOf(h.Listen(t, "tcp", net.JoinHostPort(fam.addr, "0"))) }
			open, droppedOpen, reset, admin, portUnreach := listen(), listen(), listen(), listen(), listen()
			rule := func(ports string, args ...string) {
				h.Run(t, append([]string{fam.iptables, "-w", "-A", "INPUT", "-p", "tcp", "--dport", ports, "-j"}, args...)...)
			}
			rule(strconv.Itoa(int(droppedOpen)), "DROP")
			rule("21000:21049", "DROP")
			rule(strconv.Itoa(int(reset)), "REJECT", "--reject-with", "tcp-reset")
			rule(strconv.Itoa(int(admin)), "REJECT", "--reject-with", fam.admin)
			rule(strconv.Itoa(int(portUnreach)), "REJECT", "--reject-with", fam.portUnreach)
			want := map[uint16]string{
				open: "open/syn-ack", droppedOpen: "filtered/no-response", reset: "closed/conn-refused",
				admin: "filtered/admin-prohibited", portUnreach: "closed/port-unreach",
			}
			for p := uint16(21000); p < 21050; p++ {
				want[p] = "filtered/no-response"
			}
			for p := uint16(20000); p < 20500; p++ {
				want[p] = "closed/conn-refused"
			}
			rep := scanIn(t, h, target(netip.MustParseAddr(fam.addr)), scan.Options{Ports: slices.Collect(maps.Keys(want)), MaxRetries: -1})
			host := rep.Hosts[0]
			if got := byState(host); !maps.Equal(got, want) {
				for _, p := range host.Ports {
					if g, w := got[p.Port], want[p.Port]; g != w {
						t.Errorf("port %d: %s, want %s (%+v)", p.Port, g, w, p)
					}
				}
				t.FailNow()
			}
			if host.State != scan.HostUp {
				t.Fatalf("host state %s, want up", host.State)
			}
		})
	}
}

// The same over IPv6 (ip6tables, ICMPv6).
func TestFirewallStatesIPv6(t *testing.T) {
	pair := netlab.New(t).PairV6()
	c, s, saddr := pair.Client, pair.Server, pair.ServerAddr
	listen := func() uint16 { return portOf(s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0"))) }
	open, drop, reset, admin := listen(), listen(), listen(), listen()
	closed := closedPort(t, s, saddr.String())
	rule := func(p uint16, args ...string) {
		s.Run(t, append([]string{"ip6tables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(p)), "-j"}, args...)...)
	}
	rule(drop, "DROP")
	rule(reset, "REJECT", "--reject-with", "tcp-reset")
	rule(admin, "REJECT", "--reject-with", "icmp6-adm-prohibited")
	want := map[uint16]string{
		open: "open/syn-ack", drop: "filtered/no-response", reset: "closed/conn-refused",
		admin: "filtered/admin-prohibited", closed: "closed/conn-refused",
	}
	rep := scanIn(t, c, target(saddr), scan.Options{Ports: slices.Collect(maps.Keys(want)), MaxRetries: -1})
	if got := byState(rep.Hosts[0]); !maps.Equal(got, want) {
		t.Fatalf("states:\n got %v\nwant %v", got, want)
	}
}

// A dead host on the link is one host-unreachable line, not 1000 filtered
// ports, and a host with no route is no-route at once; live hosts in the same
// scan are unaffected.
func TestDeadHostsAreHostLevel(t *testing.T) {
	pair := netlab.New(t).Pair()
	c, s, saddr, lab := pair.Client, pair.Server, pair.ServerAddr, pair.Lab
	want := []uint16{portOf(s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0")))}
	dead := lab.Unowned(t, saddr)
	noRoute := netip.MustParseAddr("198.19.255.1") // on no link of the lab
	ports := make([]uint16, 0, 1000)
	for p := 1; p <= 1000; p++ {
		ports = append(ports, uint16(p))
	}
	if want[0] > 1000 {
		ports = append(ports, want[0])
	}
	var hostEvents []scan.Host
	rep := scanIn(t, c, []scan.Target{{Addr: saddr}, {Addr: dead}, {Addr: noRoute}}, scan.Options{
		Ports:  ports,
		OnHost: func(h scan.Host) { hostEvents = append(hostEvents, h) },
	})
	got := map[netip.Addr]scan.Host{}
	for _, h := range rep.Hosts {
		got[h.Addr] = h
	}
	if h := got[saddr]; h.State != scan.HostUp || !slices.Equal(openSet(h), want) || h.Counts.Closed != len(ports)-1 {
		t.Fatalf("live host: %s open %v counts %+v", h.State, openSet(h), h.Counts)
	}
	if h := got[dead]; h.State != scan.HostUnreachable || len(h.Ports) != 0 || h.Reason != scan.ReasonHostUnreach {
		t.Fatalf("dead host: state %s reason %s, %d ports (%+v); want host-unreachable and no ports", h.State, h.Reason, len(h.Ports), h.Counts)
	} else {
		t.Logf("dead host evidence: %s", h.Evidence)
	}
	if h := got[noRoute]; h.State != scan.HostNoRoute || len(h.Ports) != 0 {
		t.Fatalf("unrouted host: state %s, %d ports; want no-route and no ports", h.State, len(h.Ports))
	}
	if len(hostEvents) != 2 {
		t.Fatalf("OnHost called %d times, want 2 (dead and unrouted)", len(hostEvents))
	}
	t.Logf("elapsed %v, %d probes", rep.Elapsed, rep.Probes)
}

// With almost no file descriptors left, the scan slows down and stays exact:
// EMFILE never turns into "closed".
func TestEMFILEIsNeverClosed(t *testing.T) {
	pair := netlab.New(t).Pair()
	c, s, saddr := pair.Client, pair.Server, pair.ServerAddr
	want := map[uint16]string{}
	for range 5 {
		want[portOf(s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0")))] = "open/syn-ack"
	}
	for range 5 {
		want[closedPort(t, s, saddr.String())] = "closed/conn-refused"
	}
	for p := 20000; p < 20060; p++ {
		if _, ok := want[uint16(p)]; !ok {
			want[uint16(p)] = "filtered/no-response"
		}
	}
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "20000:20059", "-j", "DROP")

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	var low uint64
	// Inside the namespace, lower the soft limit to leave the event loop a
	// handful of descriptors (only the soft limit: without CAP_SYS_RESOURCE a
	// lowered hard limit could not be raised again). Concurrency is set, so
	// Scan does not raise the limit itself.
	// The portable engine enters RunIn once per connect in flight: the
	// first to enter lowers the limit, the last to leave restores it.
	// Entering needs descriptors too, so the limit is lowered once every
	// one is inside (the epoll engine's single loop, or the portable
	// engine's goroutine for each of the 70 ports).
	var mu sync.Mutex
	inside := 0
	entrants := 1
	if labEngine == scan.EnginePortable {
		entrants = len(want)
	}
	var entered sync.WaitGroup
	entered.Add(entrants)
	lowered := func(f func() error) error {
		return c.Do(func() error {
			entered.Done()
			entered.Wait()
			mu.Lock()
			if inside == 0 {
				low = uint64(openFDs(t) + 10)
				if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: low, Max: old.Max}); err != nil {
					mu.Unlock()
					return err
				}
			}
			inside++
			mu.Unlock()
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				if inside--; inside == 0 {
					if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
						t.Errorf("restore RLIMIT_NOFILE: %v", err)
					}
				}
			}()
			return f()
		})
	}
	var logs testnet.Buffer // written by the event loop (or the portable engine's goroutines), read after Scan
	rep, err := scan.Scan(context.Background(), target(saddr), scan.Options{
		Ports: slices.Collect(maps.Keys(want)), Concurrency: 500, Workers: 1, MaxRetries: -1, RunIn: lowered, Engine: labEngine,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if !strings.Contains(logs.String(), "errno=\"too many open files\"") {
		t.Fatalf("the scan never ran out of descriptors, so this test proved nothing; log:\n%s", logs.String())
	}
	if got := byState(rep.Hosts[0]); !maps.Equal(got, want) {
		for p, st := range got {
			if want[p] != st {
				t.Errorf("port %d: %s, want %s", p, st, want[p])
			}
		}
		t.FailNow()
	}
	t.Logf("elapsed %v with RLIMIT_NOFILE %d", rep.Elapsed, low)
}

// Canceling returns what was found so far, and leaks nothing.
func TestCancelReturnsPartialResults(t *testing.T) {
	pair := netlab.New(t).Pair()
	c, s, saddr := pair.Client, pair.Server, pair.ServerAddr
	open := portOf(s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0")))
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "1:300", "-j", "DROP") // open is ephemeral, above 300
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ports := []uint16{open}
	for p := 1; p <= 300; p++ {
		ports = append(ports, uint16(p))
	}
	for p := 400; p < 450; p++ { // closed: decided at once
		ports = append(ports, uint16(p))
	}
	seen := make(chan struct{})
	opened, closed := false, 0 // OnPort calls are serialized
	rep, err := scan.Scan(ctx, target(saddr), scan.Options{
		Ports: ports, Concurrency: 1000, Timeout: 10 * time.Second, MinTimeout: 10 * time.Second, RunIn: c.Do, Engine: labEngine,
		OnPort: func(p scan.Port) {
			opened = opened || p.State == scan.Open
			if p.State == scan.Closed {
				closed++
			}
			if opened && closed >= 10 && ctx.Err() == nil {
				close(seen)
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) || rep == nil || !rep.Canceled {
		t.Fatalf("Scan after cancel = %v, %v; want partial report and context.Canceled", rep, err)
	}
	<-seen
	if got := openSet(rep.Hosts[0]); !slices.Equal(got, []uint16{open}) {
		t.Fatalf("partial report open = %v, want [%d]", got, open)
	}
	// Only decided ports, each once, in port order, and counted.
	host := rep.Hosts[0]
	for i, p := range host.Ports {
		if p.State == "" || p.Tries == 0 || (i > 0 && host.Ports[i-1].Port >= p.Port) {
			t.Fatalf("partial report port %d: %+v (previous %+v)", i, p, host.Ports[max(i-1, 0)])
		}
	}
	if c := host.Counts; c.Open+c.Closed+c.Filtered != len(host.Ports) || rep.Counts != c || c.Closed < 10 || c.Filtered != 0 {
		t.Fatalf("partial report counts %+v (report %+v) for %d ports", c, rep.Counts, len(host.Ports))
	}
	if got := openFDs(t); got > fds {
		t.Fatalf("fd leak after cancel: %d before, %d after", fds, got)
	}
	// errgroup's Wait returns before its goroutines have quite exited: give
	// them a bounded moment; a leaked one stays.
	got := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); got > goroutines && time.Now().Before(deadline); got = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	if got > goroutines {
		t.Fatalf("goroutine leak after cancel: %d before, %d after", goroutines, got)
	}
}

func BenchmarkLoopbackFullRange(b *testing.B) {
	lab := netlab.New(b)
	h := lab.Host("lo")
	for range 25 {
		h.Listen(b, "tcp", "127.0.0.1:0")
	}
	ports := allPorts()
	b.ResetTimer()
	for b.Loop() {
		rep := scanIn(b, h, target(netip.MustParseAddr("127.0.0.1")), scan.Options{Ports: ports})
		if rep.Counts.Open != 25 {
			b.Fatalf("open = %d, want 25", rep.Counts.Open)
		}
	}
	b.ReportMetric(float64(len(ports))*float64(b.N)/b.Elapsed().Seconds(), "ports/s")
}

func BenchmarkDropped2000(b *testing.B) {
	pair := netlab.New(b).Pair()
	c, s, saddr := pair.Client, pair.Server, pair.ServerAddr
	var open []string
	for range 5 {
		open = append(open, strconv.Itoa(int(portOf(s.Listen(b, "tcp", net.JoinHostPort(saddr.String(), "0"))))))
	}
	ports := make([]uint16, 0, 2005)
	for p := 1; p <= 2000; p++ {
		ports = append(ports, uint16(p))
	}
	for _, o := range open {
		n, _ := strconv.Atoi(o)
		ports = append(ports, uint16(n))
	}
	s.Iptables(b, "-A", "INPUT", "-p", "tcp", "--dport", "1:2000", "-j", "DROP")
	b.ResetTimer()
	for b.Loop() {
		rep := scanIn(b, c, target(saddr), scan.Options{Ports: ports, MaxRetries: -1})
		if rep.Counts.Open != 5 || rep.Counts.Filtered != 2000 {
			b.Fatalf("counts %+v, want 5 open 2000 filtered (open ports %s)", rep.Counts, fmt.Sprint(open))
		}
	}
}

// A /24 where only three addresses exist: every other address is one
// host-level verdict (no ARP answer), not 1000 filtered ports, even though
// the kernel rate-limits the ICMP errors that would say so.
func TestSubnetOfMostlyDeadHosts(t *testing.T) {
	pair := netlab.New(t).Pair()
	c, s, caddr, saddr := pair.Client, pair.Server, pair.ClientAddr, pair.ServerAddr
	s2 := s.AddAddr(t, saddr)
	want := map[netip.Addr][]uint16{caddr: nil}
	for _, a := range []netip.Addr{saddr, s2} {
		for range 2 {
			want[a] = append(want[a], portOf(s.Listen(t, "tcp", net.JoinHostPort(a.String(), "0"))))
		}
		slices.Sort(want[a])
	}
	ports := make([]uint16, 0, 1004)
	for p := 1; p <= 1000; p++ {
		ports = append(ports, uint16(p))
	}
	for _, ps := range want {
		ports = append(ports, ps...)
	}
	var targets []scan.Target
	base := netip.PrefixFrom(caddr, 24).Masked().Addr()
	for a, i := base, 0; i < 256; a, i = a.Next(), i+1 {
		targets = append(targets, scan.Target{Addr: a})
	}
	var progress []scan.Progress // called from one goroutine, read after Scan
	rep := scanIn(t, c, targets, scan.Options{Ports: ports, MaxRetries: -1,
		Progress: func(p scan.Progress) { progress = append(progress, p) }})
	if len(progress) == 0 {
		t.Fatal("Progress never called during a scan of several seconds")
	}
	for i, p := range progress {
		if p.Total != int64(256*len(ports)) || p.Done > p.Total || (i > 0 && p.Done < progress[i-1].Done) {
			t.Fatalf("progress %d: %+v (previous %+v)", i, p, progress[max(i-1, 0)])
		}
	}
	down := 0
	for _, h := range rep.Hosts {
		if w, ok := want[h.Addr]; ok {
			if h.State != scan.HostUp || !slices.Equal(openSet(h), w) || h.Counts.Filtered != 0 {
				t.Errorf("%v: %s open %v counts %+v; want up, open %v, nothing filtered", h.Addr, h.State, openSet(h), h.Counts, w)
			}
			continue
		}
		if (h.State != scan.HostUnreachable && h.State != scan.HostNoRoute) || len(h.Ports) != 0 {
			t.Errorf("%v: %s with %d ports %+v; want a host-level verdict", h.Addr, h.State, len(h.Ports), h.Counts)
			continue
		}
		down++
	}
	if down != 253 {
		t.Fatalf("%d hosts reported down, want 253", down)
	}
	t.Logf("256 hosts x %d ports in %v, %d probes", len(ports), rep.Elapsed, rep.Probes)
}

// IPv6: a dead neighbour (no neighbour-solicitation answer) is host-level too.
func TestDeadHostIPv6(t *testing.T) {
	pair := netlab.New(t).PairV6()
	c, s, saddr := pair.Client, pair.Server, pair.ServerAddr
	open := portOf(s.Listen(t, "tcp6", net.JoinHostPort(saddr.String(), "0")))
	dead := pair.Lab.Unowned(t, saddr)
	rep := scanIn(t, c, []scan.Target{{Addr: saddr}, {Addr: dead}}, scan.Options{Ports: []uint16{open, 1, 2, 3}})
	for _, h := range rep.Hosts {
		switch h.Addr {
		case saddr:
			if !slices.Equal(openSet(h), []uint16{open}) || h.Counts.Closed != 3 {
				t.Errorf("live host: open %v counts %+v", openSet(h), h.Counts)
			}
		case dead:
			if h.State != scan.HostUnreachable || len(h.Ports) != 0 {
				t.Errorf("dead host: %s, %d ports; want host-unreachable", h.State, len(h.Ports))
			}
			t.Logf("dead host evidence: %s", h.Evidence)
		}
	}
}

// --rate is a ceiling: 300 connects at 1000/s cannot finish in much less
// than 0.3 s (the limiter's burst of 10 and where each engine starts its
// clock take some 20 ms off), however fast loopback answers; unlimited they
// take a few milliseconds. (Load only makes it slower.)
func TestRateIsACeiling(t *testing.T) {
	lab := netlab.New(t)
	h := lab.Host("lo")
	ports := make([]uint16, 0, 300)
	for p := 1; p <= 300; p++ {
		ports = append(ports, uint16(p))
	}
	rep := scanIn(t, h, target(netip.MustParseAddr("127.0.0.1")), scan.Options{Ports: ports, Rate: 1000})
	if rep.Counts.Closed != 300 {
		t.Fatalf("counts %+v, want 300 closed", rep.Counts)
	}
	if min := 250 * time.Millisecond; rep.Elapsed < min {
		t.Fatalf("300 connects at 1000/s took %v, less than %v", rep.Elapsed, min)
	}
	t.Logf("elapsed %v", rep.Elapsed)
}

// MaxRetries beyond what a port's try count can hold is capped at
// MaxRetryLimit: a dropped port is tried that often and decided, instead of
// its count wrapping around and the scan never ending.
func TestMaxRetriesIsBounded(t *testing.T) {
	lab := netlab.New(t)
	h := lab.Host("lo")
	p := closedPort(t, h, "127.0.0.1")
	h.Run(t, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(p)), "-j", "DROP")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := scan.Scan(ctx, target(netip.MustParseAddr("127.0.0.1")), scan.Options{Ports: []uint16{p}, RunIn: h.Do, Engine: labEngine,
		MaxRetries: 300, Timeout: time.Millisecond, DiscoveryWait: time.Millisecond})
	if err != nil {
		t.Fatalf("Scan with MaxRetries 300: %v after %d probes", err, rep.Probes)
	}
	want := scan.Port{Addr: netip.MustParseAddr("127.0.0.1"), Port: p, State: scan.Filtered, Reason: scan.ReasonNoResponse,
		Class: probe.Timeout, Tries: 1 + scan.MaxRetryLimit}
	got := rep.Hosts[0].Ports
	if len(got) != 1 || rep.Probes != int64(want.Tries) {
		t.Fatalf("ports %+v after %d probes; want one after %d", got, rep.Probes, want.Tries)
	}
	got[0].RTT = 0
	if got[0] != want {
		t.Fatalf("port %+v, want %+v", got[0], want)
	}
}

// A link-local target carries its zone to connect(): by interface name and by
// index, each looked up inside the scan's namespace, open and closed ports
// come out right.
func TestLinkLocalZone(t *testing.T) {
	pair := netlab.New(t).PairV6()
	c, s, saddr := pair.Client, pair.Server, pair.ServerAddr
	ifname := strings.Fields(c.Run(t, "ip", "-o", "-6", "addr", "show", "scope", "global"))[1]
	index := strings.TrimSpace(c.Run(t, "cat", "/sys/class/net/"+ifname+"/ifindex"))
	sname := strings.Fields(s.Run(t, "ip", "-o", "-6", "addr", "show", "to", saddr.String()))[1]
	s.Run(t, "ip", "addr", "add", "fe80::2/64", "dev", sname, "nodad")
	open := portOf(s.Listen(t, "tcp6", "[::]:0"))
	closed := closedPort(t, s, "::")
	for _, zone := range []string{ifname, index} {
		addr := netip.MustParseAddr("fe80::2").WithZone(zone)
		rep := scanIn(t, c, target(addr), scan.Options{Ports: []uint16{open, closed}, MaxRetries: -1})
		want := map[uint16]string{open: "open/syn-ack", closed: "closed/conn-refused"}
		if got := byState(rep.Hosts[0]); !maps.Equal(got, want) {
			t.Errorf("zone %q: %v, want %v", zone, got, want)
		}
	}
}

// A host this host's own routes refuse to send to (prohibit: EACCES;
// blackhole: EINVAL) got no probe at all: it is local-error, not a host that
// "did not answer", and its ports say why.
func TestLocalRouteRefusals(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Host("c")
	prohibited, blackholed := netip.MustParseAddr("198.19.254.1"), netip.MustParseAddr("198.19.253.1")
	c.AddRoute(t, "prohibit", prohibited.String()+"/32")
	c.AddRoute(t, "blackhole", blackholed.String()+"/32")
	rep := scanIn(t, c, []scan.Target{{Addr: prohibited}, {Addr: blackholed}}, scan.Options{Ports: []uint16{1, 2, 3}})
	for _, h := range rep.Hosts {
		reason := map[netip.Addr]string{prohibited: scan.ReasonLocalProhibited, blackholed: scan.ReasonLocalError}[h.Addr]
		if h.State != scan.HostLocalError || h.Counts != (scan.Counts{Filtered: 3}) || len(h.Ports) != 3 {
			t.Errorf("%v: state %s counts %+v ports %d; want local-error, 3 filtered", h.Addr, h.State, h.Counts, len(h.Ports))
		}
		for _, p := range h.Ports {
			if p.Reason != reason || p.Tries != 1 {
				t.Errorf("%v: %+v, want reason %s after 1 try", h.Addr, p, reason)
			}
		}
	}
}

// An IPv4-mapped IPv6 target is its IPv4 address: connect() from an IPv6
// socket bound to ::1 could not reach it (it was reported no-route).
func TestMappedTargetIsIPv4(t *testing.T) {
	lab := netlab.New(t)
	h := lab.Host("lo")
	open := portOf(h.Listen(t, "tcp", "127.0.0.1:0"))
	closed := closedPort(t, h, "127.0.0.1")
	rep := scanIn(t, h, target(netip.MustParseAddr("::ffff:127.0.0.1")), scan.Options{Ports: []uint16{open, closed}, MaxRetries: -1})
	host := rep.Hosts[0]
	want := map[uint16]string{open: "open/syn-ack", closed: "closed/conn-refused"}
	if got := byState(host); host.Addr != netip.MustParseAddr("127.0.0.1") || host.State != scan.HostUp || !maps.Equal(got, want) {
		t.Fatalf("host %v %s ports %v; want 127.0.0.1 up with %v", host.Addr, host.State, got, want)
	}
}

// A target given twice (here once as IPv4-mapped) is scanned and reported
// once: every port probed once, one host in the report.
func TestDuplicateTargetsScannedOnce(t *testing.T) {
	lab := netlab.New(t)
	h := lab.Host("lo")
	open := portOf(h.Listen(t, "tcp", "127.0.0.1:0"))
	lo := netip.MustParseAddr("127.0.0.1")
	var seen []uint16 // OnPort calls are serialized
	rep := scanIn(t, h, []scan.Target{{Addr: lo}, {Addr: netip.MustParseAddr("::ffff:127.0.0.1")}, {Addr: lo, Name: "localhost"}},
		scan.Options{Ports: []uint16{open, open, 1}, MaxRetries: -1, OnPort: func(p scan.Port) { seen = append(seen, p.Port) }})
	if len(rep.Hosts) != 1 || rep.Probes != 2 || len(seen) != 2 || rep.Ports != 2 || len(rep.Hosts[0].Ports) != 2 {
		t.Fatalf("%d hosts, %d probes, ports per host %d, OnPort saw %v; want 1 host, 2 ports probed once", len(rep.Hosts), rep.Probes, rep.Ports, seen)
	}
}

// The portable engine (net.Dialer on goroutines, what macOS and Windows
// run) passes the same exactness tests as the epoll engine.
func TestPortableEngineLab(t *testing.T) {
	labEngine = scan.EnginePortable
	defer func() { labEngine = scan.EngineDefault }()
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"LoopbackFullRangeExact", TestLoopbackFullRangeExact},
		{"FirewallStates", TestFirewallStates},
		{"LoopbackFirewallStates", TestLoopbackFirewallStates},
		{"DeadHostsAreHostLevel", TestDeadHostsAreHostLevel},
		{"FirewallStatesIPv6", TestFirewallStatesIPv6},
		{"EMFILEIsNeverClosed", TestEMFILEIsNeverClosed},
		{"CancelReturnsPartial", TestCancelReturnsPartialResults},
		{"DeadHostIPv6", TestDeadHostIPv6},
		{"RateIsACeiling", TestRateIsACeiling},
		{"MaxRetriesIsBounded", TestMaxRetriesIsBounded},
		{"LinkLocalZone", TestLinkLocalZone},
		{"LocalRouteRefusals", TestLocalRouteRefusals},
		{"MappedTargetIsIPv4", TestMappedTargetIsIPv4},
		{"DuplicateTargetsScanned", TestDuplicateTargetsScannedOnce},
		{"SourceAndInterface", TestSourceAndInterface},
	} {
		t.Run(tc.name, tc.test)
	}
}
