package doctor_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/sockets"
	"github.com/reach-tools/reach/target"
	"golang.org/x/net/dns/dnsmessage"
)

// TestMain lets the test binary serve as a helper process: a listener that
// the server-hung case can stop with SIGSTOP.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "doctor-helper-listen" {
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(4)
			}
			go func() { defer c.Close(); buf := make([]byte, 64); c.Read(buf) }()
		}
	}
	os.Exit(m.Run())
}

// pair is a client and a server host on one link.
type pair struct {
	lab              *netlab.Lab
	cli, srv         *netlab.Host
	cliAddr, srvAddr netip.Addr
}

func newPair(t testing.TB) *pair {
	t.Helper()
	netlab.Require(t)
	lab := netlab.New(t)
	p := &pair{lab: lab, cli: lab.Host("cli"), srv: lab.Host("srv")}
	p.cliAddr, p.srvAddr = lab.Link(p.cli, p.srv)
	return p
}

// serve accepts connections on ln and hands each to fn (nil: keep it open
// until the test ends).
func serve(t *testing.T, ln net.Listener, fn func(net.Conn)) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if fn == nil {
				conns = append(conns, c)
				continue
			}
			fn(c)
		}
	}()
}

func portOf(ln net.Listener) uint16 { return ln.Addr().(*net.TCPAddr).AddrPort().Port() }

// agent answers for a host as an agent on it would: it gathers the host's
// evidence inside its namespace.
type agent struct{ h *netlab.Host }

func (a agent) Evidence(ctx context.Context, _ netip.AddrPort) (doctor.HostEvidence, error) {
	var ev doctor.HostEvidence
	err := a.h.Do(func() error {
		ev = doctor.Gather(ctx, nil, nil)
		return nil
	})
	ev.Host = "agent on " + a.h.Name()
	return ev, err
}

// where the doctor runs, and what it can ask.
type side int

const (
	onServer side = iota // the doctor runs on the target host
	onClient             // on another host, seeing only the client's view
	viaAgent             // on another host, asking an agent on the target
)

func (s side) String() string { return [...]string{"server", "client", "agent"}[s] }

func (p *pair) run(t *testing.T, sd side, ep string, timeout time.Duration, resolver *net.Resolver) *doctor.Report {
	t.Helper()
	e, err := target.ParseEndpoint(ep, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := p.cli
	if sd == onServer {
		h = p.srv
	}
	opt := doctor.Options{Timeout: timeout, Dial: h.DialContext, Enter: h.Do, Resolver: resolver}
	if sd == viaAgent {
		opt.Remote = agent{p.srv}
	}
	start := time.Now()
	r := doctor.Run(context.Background(), e, opt)
	if took := time.Since(start); took > timeout+timeout*3/10+time.Second {
		t.Errorf("diagnosis took %v with --timeout %v", took, timeout)
	}
	return r
}

func (p *pair) srvEP(port uint16) string { return netip.AddrPortFrom(p.srvAddr, port).String() }

type want struct {
	cause      doctor.Cause
	confidence doctor.Confidence
	reachable  bool
	evidence   string // a substring of some finding's evidence
}

func check(t *testing.T, r *doctor.Report, w want) {
	t.Helper()
	var b strings.Builder
	r.WriteText(&b, doctor.TextOptions{})
	if testing.Verbose() {
		t.Log("\n" + b.String())
	}
	if r.Cause != w.cause || r.Confidence != w.confidence || r.Reachable != w.reachable {
		t.Errorf("got cause %s (%s) reachable=%v, want %s (%s) reachable=%v\n%s", r.Cause, r.Confidence, r.Reachable, w.cause, w.confidence, w.reachable, b.String())
		return
	}
	if w.evidence != "" {
		for _, f := range r.Findings {
			if strings.Contains(f.Evidence, w.evidence) {
				return
			}
		}
		t.Errorf("no finding's evidence contains %q\n%s", w.evidence, b.String())
	}
	if len(r.Checks) < 6 {
		t.Errorf("only %d checks walked", len(r.Checks))
	}
}

const quick = 1500 * time.Millisecond

func TestReachable(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	for _, sd := range []side{onServer, onClient, viaAgent} {
		r := p.run(t, sd, p.srvEP(portOf(ln)), quick, nil)
		check(t, r, want{cause: doctor.Reachable, confidence: doctor.Confirmed, reachable: true})
		if r.Class != "open" {
			t.Errorf("%v: class %s", sd, r.Class)
		}
	}
}

func TestNotListening(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	// The namespace is new and empty: nothing listens on any port.
	ep := p.srvEP(7708)
	check(t, p.run(t, onServer, ep, quick, nil), want{cause: doctor.NotListening, confidence: doctor.Confirmed, evidence: "nothing listens on port 7708"})
	check(t, p.run(t, viaAgent, ep, quick, nil), want{cause: doctor.NotListening, confidence: doctor.Confirmed, evidence: "nothing listens on port 7708"})
	r := p.run(t, onClient, ep, quick, nil)
	check(t, r, want{cause: doctor.NotListening, confidence: doctor.Likely, evidence: "answered the SYN with a reset"})
	// From the client the doctor lists the alternatives and how to tell them apart.
	causes := map[doctor.Cause]bool{}
	for _, f := range r.Findings {
		causes[f.Cause] = true
	}
	if !causes[doctor.WrongPort] || !causes[doctor.FirewallReject] || len(r.Next) == 0 {
		t.Errorf("client view lists %v, next %q; want the alternatives and what tells them apart", causes, r.Next)
	}
}

func TestWrongPort(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	ep := p.srvEP(portOf(ln) + 1) // free: the namespace has no other sockets
	for _, sd := range []side{onServer, viaAgent} {
		check(t, p.run(t, sd, ep, quick, nil), want{cause: doctor.WrongPort, confidence: doctor.Confirmed, evidence: fmt.Sprintf("]:%d", portOf(ln))})
	}
}

func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "127.0.0.1:0")
	serve(t, ln, nil)
	ep := p.srvEP(portOf(ln))
	for _, sd := range []side{onServer, viaAgent} {
		check(t, p.run(t, sd, ep, quick, nil), want{cause: doctor.LoopbackOnly, confidence: doctor.Confirmed, evidence: "listens on 127.0.0.1:"})
	}
}

func TestAddressFamilyMismatch(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp6", "[::]:0") // Go makes tcp6 wildcard sockets IPv6-only
	serve(t, ln, nil)
	ep := p.srvEP(portOf(ln))
	for _, sd := range []side{onServer, viaAgent} {
		check(t, p.run(t, sd, ep, quick, nil), want{cause: doctor.AddressFamilyMismatch, confidence: doctor.Confirmed, evidence: "IPv6-only"})
	}
}

func TestFirewallDrop(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	port := portOf(ln)
	p.srv.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
	ep := p.srvEP(port)
	rule := fmt.Sprintf("-A INPUT -p tcp -m tcp --dport %d -j DROP", port)
	check(t, p.run(t, onServer, ep, quick, nil), want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: rule})
	check(t, p.run(t, viaAgent, ep, quick, nil), want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: rule})
	// The client sees silence, but the host answers ping: a DROP rule is likely.
	check(t, p.run(t, onClient, ep, quick, nil), want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: "answers ping"})
}

func TestFirewallReject(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	port := portOf(ln)
	p.srv.Nft(t, fmt.Sprintf("table inet guard {\n chain input {\n  type filter hook input priority 0;\n  tcp dport %d reject with tcp reset\n }\n}\n", port))
	ep := p.srvEP(port)
	rule := fmt.Sprintf("tcp dport %d reject with tcp reset", port)
	check(t, p.run(t, onServer, ep, quick, nil), want{cause: doctor.FirewallReject, confidence: doctor.Confirmed, evidence: rule})
	check(t, p.run(t, viaAgent, ep, quick, nil), want{cause: doctor.FirewallReject, confidence: doctor.Confirmed, evidence: rule})

	// iptables REJECT with admin-prohibited: the client sees host-unreachable.
	ln2 := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln2, nil)
	p.srv.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(portOf(ln2)), "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	r := p.run(t, viaAgent, p.srvEP(portOf(ln2)), quick, nil)
	check(t, r, want{cause: doctor.FirewallReject, confidence: doctor.Confirmed, evidence: "icmp-admin-prohibited"})
	if r.Class != "host-unreachable" {
		t.Errorf("admin-prohibited: class %s, want host-unreachable", r.Class)
	}
}

func TestHostDown(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	gone := p.lab.Unowned(t, p.srvAddr)
	ep := netip.AddrPortFrom(gone, 80).String()
	// Neighbour discovery gives up after about 3s: with a longer timeout the
	// kernel says EHOSTUNREACH, with a shorter one the probe times out.
	check(t, p.run(t, onClient, ep, 5*time.Second, nil), want{cause: doctor.HostDown, confidence: doctor.Confirmed, evidence: "neighbour discovery got no answer"})
	check(t, p.run(t, onClient, ep, quick, nil), want{cause: doctor.HostDown, confidence: doctor.Likely, evidence: "answers neither ping nor SYN"})
}

func TestNoRoute(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	// Lab hosts have no default route: 198.19.200.1 is nowhere.
	check(t, p.run(t, onClient, "198.19.200.1:80", quick, nil), want{cause: doctor.NoRoute, confidence: doctor.Confirmed, evidence: "network is unreachable"})
	p.cli.AddRoute(t, "unreachable", "198.19.7.0/24")
	check(t, p.run(t, onClient, "198.19.7.1:80", quick, nil), want{cause: doctor.NoRoute, confidence: doctor.Confirmed, evidence: `"unreachable 198.19.7.0/24"`})
}

func TestDNS(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	// Nothing serves DNS in the lab: the lookup fails inside it.
	res := p.cli.Resolver(netip.AddrPortFrom(p.srvAddr, 53))
	r := p.run(t, onClient, "db.reach.test:5432", quick, res)
	check(t, r, want{cause: doctor.DNS, confidence: doctor.Confirmed, evidence: "lookup via the configured resolver"})
	if r.Class != "dns" {
		t.Errorf("class %s, want dns", r.Class)
	}
}

func TestOverloaded(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	// A listener with backlog 1 that never accepts.
	var fd int
	var port uint16
	err := p.srv.Do(func() (err error) {
		if fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err = syscall.Bind(fd, &syscall.SockaddrInet4{}); err != nil {
			return err
		}
		if err = syscall.Listen(fd, 1); err != nil {
			return err
		}
		sa, err := syscall.Getsockname(fd)
		port = uint16(sa.(*syscall.SockaddrInet4).Port)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	ep := p.srvEP(port)
	// The kernel queues backlog+1 connections; fill the queue.
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := p.cli.DialContext(ctx, "tcp", ep)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	waitFor(t, p.srv, port, func(s sockets.Socket) bool { return s.RecvQ > s.SendQ })
	for _, sd := range []side{onServer, viaAgent} {
		check(t, p.run(t, sd, ep, quick, nil), want{cause: doctor.Overloaded, confidence: doctor.Confirmed, evidence: "waiting for accept, backlog 1"})
	}
}

// waitFor polls the listener on port inside h until ok holds (bounded).
func waitFor(t *testing.T, h *netlab.Host, port uint16, ok func(sockets.Socket) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var socks []sockets.Socket
		if err := h.Do(func() (err error) {
			socks, err = sockets.Listening(context.Background(), port)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, s := range socks {
			if ok(s) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener on port %d never reached the wanted state: %v", port, socks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerHung(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const port = 7000 // the namespace is new: the port is free
	cmd := p.srv.Start(t, os.Args[0], "doctor-helper-listen", fmt.Sprintf("0.0.0.0:%d", port))
	waitFor(t, p.srv, port, func(s sockets.Socket) bool { return len(s.Processes) > 0 })
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT) })
	waitFor(t, p.srv, port, func(s sockets.Socket) bool { return s.ProcessState == "stopped" })
	ep := p.srvEP(port)
	for _, sd := range []side{onServer, viaAgent} {
		r := p.run(t, sd, ep, quick, nil)
		check(t, r, want{cause: doctor.ServerHung, confidence: doctor.Confirmed, evidence: fmt.Sprintf("(pid %d)", cmd.Process.Pid)})
		if r.Class != "open" {
			t.Errorf("class %s: the kernel should still complete the handshake", r.Class)
		}
	}
}

func TestResetAndClosedByPeer(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	rst := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, rst, func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	fin := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, fin, func(c net.Conn) { c.Close() })
	for _, sd := range []side{onClient, onServer} {
		check(t, p.run(t, sd, p.srvEP(portOf(rst)), quick, nil), want{cause: doctor.ResetByPeer, confidence: doctor.Confirmed, evidence: "reset"})
		check(t, p.run(t, sd, p.srvEP(portOf(fin)), quick, nil), want{cause: doctor.ClosedByPeer, confidence: doctor.Confirmed, evidence: "closed (EOF)"})
	}
}

func TestLocalError(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	ep := p.srvEP(portOf(ln))
	// Two ephemeral ports, both taken by connections to the same endpoint.
	p.cli.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40001")
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := p.cli.DialContext(ctx, "tcp", ep)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	r := p.run(t, onClient, ep, quick, nil)
	check(t, r, want{cause: doctor.LocalError, confidence: doctor.Confirmed, evidence: "cannot assign requested address"})
	if r.Class != "local-error" {
		t.Errorf("class %s, want local-error", r.Class)
	}
}

// A DROP rule in this host's own OUTPUT chain: the client's firewall.
func TestFirewallDropOutgoing(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	port := portOf(ln)
	p.cli.Iptables(t, "-A", "OUTPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
	check(t, p.run(t, onClient, p.srvEP(port), quick, nil), want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: fmt.Sprintf("chain OUTPUT: -A OUTPUT -p tcp -m tcp --dport %d -j DROP", port)})
}

// routed is cli -> rtr -> srv, the router forwarding between two links.
type routed struct {
	pair
	rtr        *netlab.Host
	rtrA, rtrB netip.Addr
}

func newRouted(t *testing.T) *routed {
	t.Helper()
	netlab.Require(t)
	lab := netlab.New(t)
	r := &routed{pair: pair{lab: lab, cli: lab.Host("cli"), srv: lab.Host("srv")}, rtr: lab.Host("rtr")}
	r.cliAddr, r.rtrA = lab.Link(r.cli, r.rtr)
	r.rtrB, r.srvAddr = lab.Link(r.rtr, r.srv)
	r.rtr.Sysctl(t, "net.ipv4.ip_forward", "1")
	r.cli.AddRoute(t, netip.PrefixFrom(r.srvAddr, 24).Masked().String(), "via", r.rtrA.String())
	r.srv.AddRoute(t, netip.PrefixFrom(r.cliAddr, 24).Masked().String(), "via", r.rtrB.String())
	return r
}

func checkDetail(t *testing.T, r *doctor.Report, name, substr string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			if !strings.Contains(c.Detail, substr) {
				t.Errorf("%s check: %q, want it to contain %q", name, c.Detail, substr)
			}
			return
		}
	}
	t.Errorf("no %s check in the report", name)
}

func TestRoutedFirewallDrop(t *testing.T) {
	t.Parallel()
	r := newRouted(t)
	ln := r.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	port := portOf(ln)
	r.srv.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
	rep := r.run(t, onClient, r.srvEP(port), quick, nil)
	check(t, rep, want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: "answers ping"})
	checkDetail(t, rep, "route", "via "+r.rtrA.String())
	checkDetail(t, rep, "path", fmt.Sprintf("1 %s (time exceeded", r.rtrA))
	checkDetail(t, rep, "path", "itself answered at hop 2")
}

func TestRoutedHostDown(t *testing.T) {
	t.Parallel()
	r := newRouted(t)
	gone := r.lab.Unowned(t, r.srvAddr)
	// The router gives up neighbour discovery after about 3s and says host
	// unreachable; before that the client sees only silence.
	rep := r.run(t, onClient, netip.AddrPortFrom(gone, 80).String(), 5*time.Second, nil)
	check(t, rep, want{cause: doctor.HostDown, confidence: doctor.Likely, evidence: "no route to host"})
	if rep.Class != "host-unreachable" {
		t.Errorf("class %s, want host-unreachable", rep.Class)
	}
	checkDetail(t, rep, "path", fmt.Sprintf("1 %s (time exceeded", r.rtrA))
	rep = r.run(t, onClient, netip.AddrPortFrom(gone, 80).String(), quick, nil)
	check(t, rep, want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: fmt.Sprintf("last answer came from %s at hop 1", r.rtrA)})
	if !hasCause(rep, doctor.HostDown) {
		t.Errorf("a silent host behind a router: host-down not among the possible causes")
	}
}

func hasCause(r *doctor.Report, c doctor.Cause) bool {
	for _, f := range r.Findings {
		if f.Cause == c {
			return true
		}
	}
	return false
}

// serveDNS answers A queries for name with addrs (and AAAA with nothing)
// from a UDP socket inside h, until the test ends.
func serveDNS(t *testing.T, h *netlab.Host, on netip.Addr, name string, addrs []netip.Addr) netip.AddrPort {
	t.Helper()
	pc := h.ListenPacket(t, "udp", netip.AddrPortFrom(on, 53).String())
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			hdr, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if q.Name.String() == name && q.Type == dnsmessage.TypeA {
				for _, a := range addrs {
					b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a.As4()})
				}
			}
			msg, err := b.Finish()
			if err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	return netip.AddrPortFrom(on, 53)
}

// A name with one good and one bad address is reported as such: reachable
// on one, with the cause of the other.
func TestNameWithGoodAndBadAddress(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	bad := p.srv.AddAddr(t, p.srvAddr)
	ln := p.srv.Listen(t, "tcp", netip.AddrPortFrom(p.srvAddr, 0).String())
	serve(t, ln, nil)
	ns := serveDNS(t, p.srv, p.srvAddr, "db.reach.test.", []netip.Addr{p.srvAddr, bad})
	ep := fmt.Sprintf("db.reach.test:%d", portOf(ln))
	r := p.run(t, onServer, ep, quick, p.srv.Resolver(ns))
	check(t, r, want{cause: doctor.NotListening, confidence: doctor.Confirmed, reachable: true, evidence: fmt.Sprintf("you dialled %s", netip.AddrPortFrom(bad, portOf(ln)))})
	if len(r.Addresses) != 2 || r.Addresses[0].Class != "open" || r.Addresses[1].Class != "refused" {
		t.Errorf("addresses %+v, want the first open and the second refused", r.Addresses)
	}
	if !strings.Contains(r.Verdict, "some addresses only") {
		t.Errorf("verdict %q does not say only some addresses work", r.Verdict)
	}
	checkDetail(t, r, "dns", "(2 A, 0 AAAA)")
}

// A server listening on IPv4 only, dialled on its IPv6 address.
func TestIPv4OnlyServerDialledOnIPv6(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	_, srv6 := p.lab.LinkV6(p.cli, p.srv)
	ln := p.srv.Listen(t, "tcp4", "0.0.0.0:0")
	serve(t, ln, nil)
	ep := netip.AddrPortFrom(srv6, portOf(ln)).String()
	for _, sd := range []side{onServer, viaAgent} {
		r := p.run(t, sd, ep, quick, nil)
		check(t, r, want{cause: doctor.AddressFamilyMismatch, confidence: doctor.Confirmed, evidence: "listens on 0.0.0.0:"})
		checkDetail(t, r, "icmp", "echo reply from "+srv6.String())
	}
}

// A server that resets every other connection: the repeated probes tell a
// flapping endpoint from a steady failure.
func TestIntermittent(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	n := 0
	serve(t, ln, func(c net.Conn) {
		if n++; n%2 == 0 {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		conns = append(conns, c) // closed by the cleanup above, after serve's
	})
	r := p.run(t, onClient, p.srvEP(portOf(ln)), quick, nil)
	check(t, r, want{cause: doctor.ResetByPeer, confidence: doctor.Confirmed})
	if len(r.Addresses) != 1 || !r.Addresses[0].Intermittent || !strings.Contains(r.Verdict, "intermittent: open, reset, open") {
		t.Errorf("verdict %q, addresses %+v: want the flapping named", r.Verdict, r.Addresses)
	}
}

// A default-deny host: INPUT policy DROP, only ssh allowed. The policy is
// the evidence.
func TestFirewallPolicyDrop(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	serve(t, ln, nil)
	p.srv.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
	p.srv.Iptables(t, "-P", "INPUT", "DROP")
	ep := p.srvEP(portOf(ln))
	for _, sd := range []side{onServer, viaAgent} {
		check(t, p.run(t, sd, ep, quick, nil), want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "chain INPUT: -P INPUT DROP"})
	}
}

// Echo works over an unprivileged ICMP socket when ping_group_range admits
// the group, and over a raw socket otherwise (we run as root).
func TestEchoSockets(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ep := p.srvEP(7)
	r := p.run(t, onClient, ep, quick, nil)
	checkDetail(t, r, "icmp", "(raw socket)")
	p.cli.Sysctl(t, "net.ipv4.ping_group_range", fmt.Sprintf("%d %d", os.Getegid(), os.Getegid()))
	r = p.run(t, onClient, ep, quick, nil)
	checkDetail(t, r, "icmp", fmt.Sprintf("echo reply from %s", p.srvAddr))
	checkDetail(t, r, "icmp", "(unprivileged ICMP socket)")
}

// An nftables DROP on IPv6: ICMPv6 echo, the IPv6 path probe and the inet
// rule all take part.
func TestFirewallDropIPv6(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	_, srv6 := p.lab.LinkV6(p.cli, p.srv)
	ln := p.srv.Listen(t, "tcp6", "[::]:0")
	serve(t, ln, nil)
	port := portOf(ln)
	p.srv.Nft(t, fmt.Sprintf("table inet guard {\n chain input {\n  type filter hook input priority 0;\n  tcp dport %d drop\n }\n}\n", port))
	ep := netip.AddrPortFrom(srv6, port).String()
	r := p.run(t, onClient, ep, quick, nil)
	check(t, r, want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: "answers ping"})
	checkDetail(t, r, "path", "itself answered at hop 1")
	check(t, p.run(t, viaAgent, ep, quick, nil), want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: fmt.Sprintf("tcp dport %d drop", port)})
}
