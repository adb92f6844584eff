package dial

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// faultLab is a client host c and a server host s on one link. s has two
// addresses: a server listens on secondary:port only, so primary:port
// refuses unless a test puts a rule or a server there.
type faultLab struct {
	lab                *netlab.Lab
	c, s               *netlab.Host
	primary, secondary netip.Addr
	port               uint16
}

func newFaultLab(t *testing.T) *faultLab {
	t.Helper()
	p := netlab.New(t).Pair()
	f := &faultLab{lab: p.Lab, c: p.Client, s: p.Server, primary: p.ServerAddr}
	f.secondary = f.s.AddAddr(t, f.primary)
	ln := f.s.Listen(t, "tcp", netip.AddrPortFrom(f.secondary, 0).String())
	f.port = testnet.ServeOn(t, ln, testnet.Drain).Port()
	return f
}

func (f *faultLab) ep(a netip.Addr) endpoint.Endpoint {
	return endpoint.FromAddrPort(netip.AddrPortFrom(a, f.port))
}

// reject makes s answer SYNs to primary:port with the given iptables target.
func (f *faultLab) reject(t *testing.T, jump ...string) {
	f.s.Iptables(t, append([]string{"-A", "INPUT", "-d", f.primary.String(), "-p", "tcp", "--dport", strconv.Itoa(int(f.port)), "-j"}, jump...)...)
}

func TestLabFailover(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*testing.T, *faultLab)
		opt    Options
		first  probe.Class // the primary's class
		within time.Duration
	}{
		{name: "refused: bound to another address", setup: func(*testing.T, *faultLab) {}, first: probe.Refused},
		{name: "REJECT tcp-reset", setup: func(t *testing.T, f *faultLab) { f.reject(t, "REJECT", "--reject-with", "tcp-reset") }, first: probe.Refused},
		{name: "REJECT icmp-port-unreachable", setup: func(t *testing.T, f *faultLab) { f.reject(t, "REJECT", "--reject-with", "icmp-port-unreachable") }, first: probe.Refused},
		{name: "REJECT icmp-admin-prohibited", setup: func(t *testing.T, f *faultLab) { f.reject(t, "REJECT", "--reject-with", "icmp-admin-prohibited") }, first: probe.HostUnreachable},
		{name: "REJECT icmp-host-unreachable", setup: func(t *testing.T, f *faultLab) { f.reject(t, "REJECT", "--reject-with", "icmp-host-unreachable") }, first: probe.HostUnreachable},
		{name: "DROP ordered", setup: func(t *testing.T, f *faultLab) { f.reject(t, "DROP") },
			opt: Options{Timeout: 300 * time.Millisecond}, first: probe.Timeout},
		{name: "DROP race", setup: func(t *testing.T, f *faultLab) { f.reject(t, "DROP") },
			opt: Options{Policy: Race, AttemptDelay: 50 * time.Millisecond, Timeout: 20 * time.Second}, first: probe.Canceled, within: 10 * time.Second},
		{name: "reset on accept", setup: func(t *testing.T, f *faultLab) {
			ln := f.s.Listen(t, "tcp", netip.AddrPortFrom(f.primary, f.port).String())
			testnet.ServeOn(t, ln, testnet.Reset)
		}, opt: Options{ReadWait: 2 * time.Second}, first: probe.Reset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaultLab(t)
			tt.setup(t, f)
			var log attemptLog
			opt := tt.opt
			opt.Dial, opt.OnAttempt = f.c.DialContext, log.add
			start := time.Now()
			conn, err := New([]endpoint.Endpoint{f.ep(f.primary), f.ep(f.secondary)}, opt).DialContext(t.Context())
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			abort(conn)
			if got := addrPortOf(conn.RemoteAddr()); got.Addr() != f.secondary {
				t.Errorf("connected to %v, want the secondary %v", got, f.secondary)
			}
			classes := map[netip.Addr]probe.Class{}
			for _, a := range log.get() {
				classes[a.Addr.Addr()] = a.Class
			}
			if classes[f.primary] != tt.first || classes[f.secondary] != probe.Open {
				t.Errorf("primary %s, secondary %s; want %s, open (attempts %+v)", classes[f.primary], classes[f.secondary], tt.first, log.get())
			}
			if tt.within > 0 && took > tt.within {
				t.Errorf("took %v: the race waited for the dropped primary", took)
			}
		})
	}
}

func TestLabNameWithSeveralAddresses(t *testing.T) {
	f := newFaultLab(t)
	ns := f.s.ListenPacket(t, "udp", netip.AddrPortFrom(f.primary, 0).String())
	serveDNS(t, ns, map[string][]netip.Addr{"svc.lab.test": {f.primary, f.secondary}})
	res := f.c.Resolver(ns.LocalAddr().(*net.UDPAddr).AddrPort())
	ep := endpoint.Endpoint{Host: "svc.lab.test", Port: f.port}
	var log attemptLog
	conn, err := New([]endpoint.Endpoint{ep}, Options{Dial: f.c.DialContext, Resolver: res, OnAttempt: log.add}).DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	abort(conn)
	var got []string
	for _, a := range log.get() {
		got = append(got, a.Addr.Addr().String()+" "+a.Class.String())
	}
	if want := []string{f.primary.String() + " refused", f.secondary.String() + " open"}; !slices.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
}

func TestLabAllDown(t *testing.T) {
	f := newFaultLab(t)
	f.s.Iptables(t, "-A", "INPUT", "-d", f.secondary.String(), "-p", "tcp", "-j", "DROP")
	d := New([]endpoint.Endpoint{f.ep(f.primary), f.ep(f.secondary)}, Options{Dial: f.c.DialContext,
		Timeout: 200 * time.Millisecond, Retries: 1, Backoff: Backoff{Initial: 10 * time.Millisecond}})
	_, err := d.DialContext(t.Context())
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *dial.Error", err)
	}
	if de.Attempts != 4 || len(de.Last) != 2 || de.Last[0].Class != probe.Refused || de.Last[1].Class != probe.Timeout {
		t.Errorf("err = %v; want 4 attempts, primary refused, secondary timeout", err)
	}
	if !errors.Is(err, probe.Refused) || !errors.Is(err, probe.Timeout) || errors.Is(err, probe.LocalError) {
		t.Errorf("errors.Is does not see each endpoint's class: %v", err)
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// A name with two IPv4 addresses whose packets are dropped and an IPv6
// address that works. The resolver sorts IPv4 first (RFC 6724 ranks ULAs
// below IPv4); race interleaves the families, so IPv6 is the second attempt
// and wins without waiting for the IPv4 timeouts.
func TestLabRaceInterleavesFamilies(t *testing.T) {
	f := newFaultLab(t)
	_, v6 := f.lab.LinkV6(f.c, f.s)
	testnet.ServeOn(t, f.s.Listen(t, "tcp", netip.AddrPortFrom(v6, f.port).String()), testnet.Drain)
	f.s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(f.port)), "-j", "DROP")
	ns := f.s.ListenPacket(t, "udp", netip.AddrPortFrom(f.primary, 0).String())
	serveDNS(t, ns, map[string][]netip.Addr{"dual.lab.test": {f.primary, f.secondary, v6}})
	var log attemptLog
	d := New([]endpoint.Endpoint{{Host: "dual.lab.test", Port: f.port}}, Options{Policy: Race, AttemptDelay: 100 * time.Millisecond,
		Timeout: 20 * time.Second, Dial: f.c.DialContext, Resolver: f.c.Resolver(ns.LocalAddr().(*net.UDPAddr).AddrPort()), OnAttempt: log.add})
	start := time.Now()
	conn, err := d.DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	abort(conn)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v: the race waited for the dropped IPv4 addresses", took)
	}
	if got := addrPortOf(conn.RemoteAddr()).Addr(); got != v6 {
		t.Fatalf("connected to %v, want %v", got, v6)
	}
	for _, a := range log.get() {
		if a.Addr.Addr() == v6 && (a.Class != probe.Open || a.N != 2) {
			t.Errorf("IPv6 attempt %d %s, want open as attempt 2 (families interleaved); attempts %+v", a.N, a.Class, log.get())
		}
	}
}
