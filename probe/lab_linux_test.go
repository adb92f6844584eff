package probe_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// Every class produced for real: a client host probes a server host across a
// veth link, and the server (or the path, or the client itself) is set up to
// fail in one specific way. Nothing here leaves the lab's namespaces.

// site is one client/server pair on a link, the world a lab case sets up.
type site struct {
	lab            *netlab.Lab
	client, server *netlab.Host
	clientAddr     netip.Addr
	serverAddr     netip.Addr
	router         *netlab.Host // only on routed sites
	gateway        netip.Addr   // the router's address on the client's link
}

// newSite lays out a client and a server on one link (IPv4, or IPv6), or
// routed: on two subnets with a forwarding router between them, routes both
// ways through it and nowhere else.
func newSite(t *testing.T, v6, routed bool) *site {
	t.Helper()
	lab := netlab.New(t)
	if routed {
		r := lab.Routed()
		// Each case probes three times. A router's ICMP errors about
		// forwarding draw on two rate limits that share one bucket per
		// destination; lift the per-namespace one, so the third still gets
		// its answer (the other, global, allows a burst of five).
		r.Router.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
		return &site{lab: lab, client: r.Client, server: r.Server, clientAddr: r.ClientAddr, serverAddr: r.ServerAddr,
			router: r.Router, gateway: r.RouterClientSide}
	}
	pair := lab.Pair
	if v6 {
		pair = lab.PairV6
	}
	p := pair()
	return &site{lab: lab, client: p.Client, server: p.Server, clientAddr: p.ClientAddr, serverAddr: p.ServerAddr}
}

// serve runs fn for each connection accepted on the server's link address and
// returns the endpoint it listens on.
func (s *site) serve(t *testing.T, fn func(net.Conn)) endpoint.Endpoint {
	t.Helper()
	ln := s.server.Listen(t, "tcp", netip.AddrPortFrom(s.serverAddr, 0).String())
	return endpoint.FromAddrPort(testnet.ServeOn(t, ln, fn))
}

// firewalled is a listening server whose port a rule then blocks, so the rule
// and nothing else makes the probe fail.
func (s *site) firewalled(t *testing.T, rule func(port string)) endpoint.Endpoint {
	t.Helper()
	ep := s.serve(t, testnet.Drain)
	rule(strconv.Itoa(int(ep.Port)))
	return ep
}

func (s *site) iptablesInput(t *testing.T, reject ...string) endpoint.Endpoint {
	t.Helper()
	return s.firewalled(t, func(port string) {
		tool := "iptables"
		if s.serverAddr.Is6() {
			tool = "ip6tables"
		}
		s.server.Run(t, append([]string{tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", port, "-j"}, reject...)...)
	})
}

func (s *site) nftInput(t *testing.T, verdict string) endpoint.Endpoint {
	t.Helper()
	return s.firewalled(t, func(port string) {
		s.server.Nft(t, fmt.Sprintf(`table inet reachtest {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport %s %s
	}
}`, port, verdict))
	})
}

// exhaustPorts leaves the client a single ephemeral port and uses it for a
// connection to ep, so the next connect to ep has no local port left.
func (s *site) exhaustPorts(t *testing.T, ep endpoint.Endpoint) {
	t.Helper()
	s.client.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40000")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := s.client.DialContext(ctx, "tcp", ep.String())
	if err != nil {
		t.Fatalf("holding the only ephemeral port: %v", err)
	}
	t.Cleanup(func() { c.Close() })
}

const (
	quick   = 5 * time.Second  // cases answered at once (or after one SYN retransmit)
	dropped = time.Second      // cases that must time out: short, they always take it all
	arp     = 15 * time.Second // neighbour discovery gives up after about 3 s
)

type labCase struct {
	name   string
	v6     bool
	routed bool // client and server on different subnets, a router between
	setup  func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options)
	want   probe.Class
	errno  syscall.Errno // 0: no errno behind the class
	// icmp is the ICMP error the probe must report, and from whom: the
	// server, the router, or the client itself (no ARP/ND answer); ""
	// for none (a reset, a timeout, a failure decided on the client).
	icmp probe.ICMPKind
	from string
	// withDial is the class a caller's DialFunc gets when it differs:
	// without the ICMP error queue, the probe can only infer.
	withDial probe.Class
}

var labCases = []labCase{
	{
		name: "open",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.serve(t, testnet.Drain), probe.Options{Timeout: quick}
		},
		want: probe.Open,
	},
	{
		name: "open-waits-for-client",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.serve(t, testnet.Drain), probe.Options{Timeout: quick, ReadWait: 200 * time.Millisecond}
		},
		want: probe.Open,
	},
	{
		name: "refused-nothing-listening",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return endpoint.FromAddrPort(netip.AddrPortFrom(s.serverAddr, 9)), probe.Options{Timeout: quick}
		},
		want: probe.Refused, errno: syscall.ECONNREFUSED,
	},
	{
		name: "timeout-iptables-drop",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "DROP"), probe.Options{Timeout: dropped}
		},
		want: probe.Timeout,
	},
	{
		name: "refused-iptables-reject-tcp-reset",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "REJECT", "--reject-with", "tcp-reset"), probe.Options{Timeout: quick}
		},
		want: probe.Refused, errno: syscall.ECONNREFUSED,
	},
	{
		name: "refused-iptables-reject-port-unreachable",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "REJECT", "--reject-with", "icmp-port-unreachable"), probe.Options{Timeout: quick}
		},
		want: probe.Refused, errno: syscall.ECONNREFUSED,
		icmp: probe.ICMPPortUnreachable, from: "server",
	},
	{
		name: "host-unreachable-iptables-reject-admin-prohibited",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "REJECT", "--reject-with", "icmp-admin-prohibited"), probe.Options{Timeout: quick}
		},
		want: probe.HostUnreachable, errno: syscall.EHOSTUNREACH,
		icmp: probe.ICMPAdminProhibited, from: "server",
	},
	{
		name: "host-unreachable-iptables-reject-host-prohibited",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "REJECT", "--reject-with", "icmp-host-prohibited"), probe.Options{Timeout: quick}
		},
		want: probe.HostUnreachable, errno: syscall.EHOSTUNREACH,
		icmp: probe.ICMPAdminProhibited, from: "server",
	},
	{
		name: "net-unreachable-iptables-reject-net-unreachable",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "REJECT", "--reject-with", "icmp-net-unreachable"), probe.Options{Timeout: quick}
		},
		want: probe.NetUnreachable, errno: syscall.ENETUNREACH,
		icmp: probe.ICMPNetUnreachable, from: "server",
	},
	{
		name: "timeout-nft-drop",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.nftInput(t, "drop"), probe.Options{Timeout: dropped}
		},
		want: probe.Timeout,
	},
	{
		name: "refused-nft-reject-tcp-reset",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.nftInput(t, "reject with tcp reset"), probe.Options{Timeout: quick}
		},
		want: probe.Refused, errno: syscall.ECONNREFUSED,
	},
	{
		name: "refused-nft-reject-port-unreachable",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.nftInput(t, "reject with icmpx type port-unreachable"), probe.Options{Timeout: quick}
		},
		want: probe.Refused, errno: syscall.ECONNREFUSED,
		icmp: probe.ICMPPortUnreachable, from: "server",
	},
	{
		name: "host-unreachable-nft-reject-admin-prohibited",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.nftInput(t, "reject with icmpx type admin-prohibited"), probe.Options{Timeout: quick}
		},
		want: probe.HostUnreachable, errno: syscall.EHOSTUNREACH,
		icmp: probe.ICMPAdminProhibited, from: "server",
	},
	{
		name: "host-unreachable-no-such-host-on-link",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return endpoint.FromAddrPort(netip.AddrPortFrom(s.lab.Unowned(t, s.serverAddr), 80)), probe.Options{Timeout: arp}
		},
		want: probe.HostUnreachable, errno: syscall.EHOSTUNREACH,
		icmp: probe.ICMPHostUnreachable, from: "client",
	},
	{
		name: "net-unreachable-no-route",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return endpoint.Endpoint{Host: "198.19.200.1", Port: 80}, probe.Options{Timeout: quick}
		},
		want: probe.NetUnreachable, errno: syscall.ENETUNREACH,
	},
	{
		name: "dns-nameserver-refused",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			// Nothing listens on the server's port 53: every query is refused.
			r := s.client.Resolver(netip.AddrPortFrom(s.serverAddr, 53))
			return endpoint.Endpoint{Host: "db.reach.test", Port: 5432}, probe.Options{Timeout: quick, Resolver: r}
		},
		want: probe.DNS,
	},
	{
		name: "dns-nxdomain",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			ns := s.server.ServeDNS(t, s.serverAddr, map[string][]netip.Addr{"db.reach.test": {s.serverAddr}})
			return endpoint.Endpoint{Host: "typo.reach.test", Port: 5432}, probe.Options{Timeout: quick, Resolver: s.client.Resolver(ns)}
		},
		want: probe.DNS,
	},
	{
		name: "open-by-name",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			port := s.serve(t, testnet.Drain).Port
			ns := s.server.ServeDNS(t, s.serverAddr, map[string][]netip.Addr{"db.reach.test": {s.serverAddr}})
			return endpoint.Endpoint{Host: "db.reach.test", Port: port}, probe.Options{Timeout: quick, Resolver: s.client.Resolver(ns)}
		},
		want: probe.Open,
	},
	{
		name: "dns-nameserver-silent",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			// The nameserver's host drops DNS queries: the lookup runs out of time.
			s.server.Iptables(t, "-A", "INPUT", "-p", "udp", "--dport", "53", "-j", "DROP")
			s.server.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "53", "-j", "DROP")
			r := s.client.Resolver(netip.AddrPortFrom(s.serverAddr, 53))
			return endpoint.Endpoint{Host: "db.reach.test", Port: 5432}, probe.Options{Timeout: dropped, Resolver: r}
		},
		want: probe.DNS,
	},
	{
		name: "reset-after-accept",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.serve(t, testnet.Reset), probe.Options{Timeout: quick, ReadWait: quick}
		},
		want: probe.Reset, errno: syscall.ECONNRESET,
	},
	{
		name: "closed-by-peer-after-accept",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.serve(t, testnet.HangUp), probe.Options{Timeout: quick, ReadWait: quick}
		},
		want: probe.ClosedByPeer,
	},
	{
		name: "local-error-ephemeral-ports-exhausted",
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			ep := s.serve(t, testnet.Drain)
			s.exhaustPorts(t, ep)
			return ep, probe.Options{Timeout: quick}
		},
		want: probe.LocalError, errno: syscall.EADDRNOTAVAIL,
	},

	// Through a router: the answers come from the router, not the target.
	{
		name: "routed-open", routed: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.serve(t, testnet.Drain), probe.Options{Timeout: quick}
		},
		want: probe.Open,
	},
	{
		name: "routed-host-unreachable-host-down-behind-router", routed: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			// The router's neighbour discovery fails and it answers ICMP host-unreachable.
			return endpoint.FromAddrPort(netip.AddrPortFrom(s.lab.Unowned(t, s.serverAddr), 80)), probe.Options{Timeout: arp}
		},
		want: probe.HostUnreachable, errno: syscall.EHOSTUNREACH,
		icmp: probe.ICMPHostUnreachable, from: "router",
	},
	{
		name: "routed-net-unreachable-router-has-no-route", routed: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			// The client sends 198.19.0.0/16 to the router, which has no route for it.
			s.client.AddRoute(t, "198.19.0.0/16", "via", s.gateway.String())
			return endpoint.Endpoint{Host: "198.19.7.7", Port: 80}, probe.Options{Timeout: quick}
		},
		want: probe.NetUnreachable, errno: syscall.ENETUNREACH,
		icmp: probe.ICMPNetUnreachable, from: "router",
	},
	{
		name: "routed-timeout-router-drops", routed: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			ep := s.serve(t, testnet.Drain)
			s.router.Iptables(t, "-A", "FORWARD", "-p", "tcp", "--dport", strconv.Itoa(int(ep.Port)), "-j", "DROP")
			return ep, probe.Options{Timeout: dropped}
		},
		want: probe.Timeout,
	},
	{
		name: "routed-host-unreachable-router-rejects-admin-prohibited", routed: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			ep := s.serve(t, testnet.Drain)
			s.router.Iptables(t, "-A", "FORWARD", "-p", "tcp", "--dport", strconv.Itoa(int(ep.Port)), "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
			return ep, probe.Options{Timeout: quick}
		},
		want: probe.HostUnreachable, errno: syscall.EHOSTUNREACH,
		icmp: probe.ICMPAdminProhibited, from: "router",
	},

	// IPv6: the same ladder over fd00::/64.
	{
		name: "v6-open", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.serve(t, testnet.Drain), probe.Options{Timeout: quick}
		},
		want: probe.Open,
	},
	{
		name: "v6-refused-nothing-listening", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return endpoint.FromAddrPort(netip.AddrPortFrom(s.serverAddr, 9)), probe.Options{Timeout: quick}
		},
		want: probe.Refused, errno: syscall.ECONNREFUSED,
	},
	{
		name: "v6-timeout-ip6tables-drop", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "DROP"), probe.Options{Timeout: dropped}
		},
		want: probe.Timeout,
	},
	{
		name: "v6-refused-ip6tables-reject-port-unreachable", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "REJECT", "--reject-with", "icmp6-port-unreachable"), probe.Options{Timeout: quick}
		},
		want: probe.Refused, errno: syscall.ECONNREFUSED,
		icmp: probe.ICMPPortUnreachable, from: "server",
	},
	{
		// Linux reports ICMPv6 administratively-prohibited as EACCES.
		name: "v6-host-unreachable-ip6tables-reject-adm-prohibited", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.iptablesInput(t, "REJECT", "--reject-with", "icmp6-adm-prohibited"), probe.Options{Timeout: quick}
		},
		want: probe.HostUnreachable, errno: syscall.EACCES,
		icmp: probe.ICMPAdminProhibited, from: "server",
	},
	{
		name: "v6-host-unreachable-nft-reject-admin-prohibited", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return s.nftInput(t, "reject with icmpx type admin-prohibited"), probe.Options{Timeout: quick}
		},
		want: probe.HostUnreachable, errno: syscall.EACCES,
		icmp: probe.ICMPAdminProhibited, from: "server",
	},
	{
		name: "v6-host-unreachable-no-such-host-on-link", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return endpoint.FromAddrPort(netip.AddrPortFrom(s.lab.Unowned(t, s.serverAddr), 80)), probe.Options{Timeout: arp}
		},
		want: probe.HostUnreachable, errno: syscall.EHOSTUNREACH,
		icmp: probe.ICMPAddressUnreachable, from: "client",
	},
	{
		// EACCES without an ICMP error: this host's own prohibit route,
		// which a caller's DialFunc cannot tell from a firewall's
		// ICMPv6 admin-prohibited.
		name: "v6-local-error-prohibit-route", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			s.client.AddRoute(t, "prohibit", "fd00:fffe::/64")
			return endpoint.Endpoint{Host: "fd00:fffe::1", Port: 80}, probe.Options{Timeout: quick}
		},
		want: probe.LocalError, errno: syscall.EACCES, withDial: probe.HostUnreachable,
	},
	{
		name: "v6-net-unreachable-no-route", v6: true,
		setup: func(t *testing.T, s *site) (endpoint.Endpoint, probe.Options) {
			return endpoint.Endpoint{Host: "fd00:ffff::1", Port: 80}, probe.Options{Timeout: quick}
		},
		want: probe.NetUnreachable, errno: syscall.ENETUNREACH,
	},
}

func TestClassesInLab(t *testing.T) {
	netlab.Require(t)
	for _, tc := range labCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSite(t, tc.v6, tc.routed)
			ep, opt := tc.setup(t, s)

			// The probe's own dialer, as commands use it, run on a
			// thread inside the client's namespace: its socket reads
			// the ICMP error queue.
			start := time.Now()
			var r, kept probe.Result
			if err := s.client.Do(func() error { r = probe.Run(t.Context(), ep, opt); return nil }); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			// Dial, which hands the connection over, goes through
			// net.Dialer; Run does not. They must agree.
			if err := s.client.Do(func() error {
				conn, res := probe.Dial(t.Context(), ep, opt)
				if conn != nil {
					conn.Close()
				}
				kept = res
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s -> %s errno=%d icmp=%v rtt=%v err=%v", ep, r.Class, r.Errno, r.ICMP, r.RTT, r.Err)
			if r.Class != tc.want || r.Errno != tc.errno {
				t.Fatalf("class %s errno %d (%v), want %s errno %d; err: %v", r.Class, r.Errno, r.Errno, tc.want, tc.errno, r.Err)
			}
			if elapsed > opt.Timeout+5*time.Second { // slack for a loaded CI machine
				t.Errorf("probe took %v, more than its %v timeout", elapsed, opt.Timeout)
			}
			if r.Endpoint != ep {
				t.Errorf("result endpoint %v, want %v", r.Endpoint, ep)
			}
			checkResultError(t, r, ep)
			checkICMP(t, r, tc, s)
			if kept.Class != r.Class || kept.Errno != r.Errno {
				t.Errorf("Dial: class %s errno %d, Run: %s errno %d; err: %v", kept.Class, kept.Errno, r.Class, r.Errno, kept.Err)
			}
			checkResultError(t, kept, ep)
			checkICMP(t, kept, tc, s)

			// A DialFunc of the caller's (here the lab's) gives the same
			// class and errno, without the ICMP error: net.Dialer's
			// sockets do not queue it.
			opt.Dial = s.client.DialContext
			d := probe.Run(t.Context(), ep, opt)
			want := tc.want
			if tc.withDial != "" {
				want = tc.withDial
			}
			if d.Class != want || d.Errno != tc.errno || d.ICMP != nil {
				t.Errorf("with Options.Dial: class %s errno %d icmp %v, want %s errno %d and no ICMP; err: %v", d.Class, d.Errno, d.ICMP, want, tc.errno, d.Err)
			}
			checkResultError(t, d, ep)
		})
	}
}

// checkICMP checks the ICMP error a result carries: its kind, who sent it,
// and that the error message names it.
func checkICMP(t *testing.T, r probe.Result, tc labCase, s *site) {
	t.Helper()
	if tc.icmp == "" {
		if r.ICMP != nil {
			t.Errorf("ICMP %v, want none", r.ICMP)
		}
		return
	}
	if r.ICMP == nil {
		t.Fatalf("no ICMP error, want %s from the %s", tc.icmp, tc.from)
	}
	// The router answers from its address on the client's link (its
	// route back); the client itself when its ARP/ND went unanswered.
	from := map[string]netip.Addr{"server": s.serverAddr, "client": s.clientAddr, "router": s.gateway}[tc.from]
	if r.ICMP.From != from {
		t.Errorf("ICMP from %v, want the %s (%v)", r.ICMP.From, tc.from, from)
	}
	if r.ICMP.Kind() != tc.icmp || r.ICMP.V6 != tc.v6 {
		t.Errorf("ICMP %+v is %q (v6 %v), want %s", r.ICMP, r.ICMP.Kind(), r.ICMP.V6, tc.icmp)
	}
	if !strings.Contains(r.Err.Error(), r.ICMP.String()) {
		t.Errorf("error %q does not name %v", r.Err, r.ICMP)
	}
}

// checkResultError checks the error chain level by level: *probe.Error, its
// class via errors.Is, and the errno or *net.DNSError underneath.
func checkResultError(t *testing.T, r probe.Result, ep endpoint.Endpoint) {
	t.Helper()
	if r.Class == probe.Open {
		if r.Err != nil || r.Addr.Port() != ep.Port || !slices.Contains(r.Resolved, r.Addr.Addr()) {
			t.Errorf("open result: err %v, addr %v, resolved %v (want nil, port %d, one of resolved)", r.Err, r.Addr, r.Resolved, ep.Port)
		}
		if _, literal := ep.Addr(); literal != (r.Lookup == 0) {
			t.Errorf("lookup took %v for %s", r.Lookup, ep.Host)
		}
		return
	}
	var pe *probe.Error
	if !errors.As(r.Err, &pe) {
		t.Fatalf("err %T %v is not a *probe.Error", r.Err, r.Err)
	}
	if !errors.Is(r.Err, r.Class) || pe.Class != r.Class || pe.Errno != r.Errno {
		t.Errorf("probe.Error %+v does not match result class %s errno %d", pe, r.Class, r.Errno)
	}
	if r.Errno != 0 && !errors.Is(r.Err, r.Errno) {
		t.Errorf("errors.Is(err, %v) = false for %v", r.Errno, r.Err)
	}
	if r.Class == probe.DNS {
		var dnsErr *net.DNSError
		if !errors.As(r.Err, &dnsErr) || pe.Op != "lookup" || pe.Addr != ep.Host || r.Addr.IsValid() {
			t.Errorf("dns failure: op %q addr %q result addr %v, chain %v; want lookup of %s with a *net.DNSError", pe.Op, pe.Addr, r.Addr, r.Err, ep.Host)
		}
		if strings.HasPrefix(ep.Host, "typo.") && !dnsErr.IsNotFound {
			t.Errorf("a name the nameserver does not know: %v, want IsNotFound", dnsErr)
		}
		return
	}
	if r.Addr.String() != ep.String() {
		t.Errorf("result addr %v, want the dialled %v", r.Addr, ep)
	}
	// A reset can beat connect's completion check (the kernel then reports
	// it from connect), so either op is right for Reset.
	switch {
	case r.Class == probe.ClosedByPeer && pe.Op != "read",
		r.Class == probe.Reset && pe.Op != "read" && pe.Op != "dial",
		r.Class != probe.Reset && r.Class != probe.ClosedByPeer && pe.Op != "dial":
		t.Errorf("op %q for class %s", pe.Op, r.Class)
	}
}

// A connection destroyed on the client's own host (ss -K, as a service load
// balancer does when a backend goes away) fails with ECONNABORTED: this
// host's doing, not the peer's, so local-error and not reset. The server
// only waits; nothing it does ends the connection.
func TestAbortedIsLocal(t *testing.T) {
	netlab.Require(t)
	s := newSite(t, false, false)
	ep := s.serve(t, testnet.Drain)
	killed := make(chan string, 1)
	go func() {
		defer close(killed)
		// ss -K prints the sockets it destroyed; poll until it has one,
		// established (one killed in SYN-SENT fails the connect instead).
		var out []byte
		var err error
		if testnet.Poll(5*time.Second, func() bool {
			out, err = s.client.Exec("ss", "-K", "-tnH", "state", "established", "dst", ep.String())
			return err != nil || strings.TrimSpace(string(out)) != ""
		}) {
			killed <- fmt.Sprintf("%v %s", err, out)
		}
	}()
	r := probe.Run(t.Context(), ep, probe.Options{Timeout: 20 * time.Second, ReadWait: 15 * time.Second, Dial: s.client.DialContext})
	t.Logf("ss -K: %s", <-killed)
	var pe *probe.Error
	if r.Class != probe.LocalError || r.Errno != syscall.ECONNABORTED || !errors.As(r.Err, &pe) || pe.Op != "read" {
		t.Fatalf("class %s errno %d, err %v; want local-error from ECONNABORTED on read (needs CONFIG_INET_DIAG_DESTROY)", r.Class, r.Errno, r.Err)
	}
}
