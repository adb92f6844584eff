package doctor_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/sockets"
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
	if len(os.Args) >= 2 && os.Args[1] == "doctor-helper-check" {
		os.Exit(helperCheck(os.Args[2:]))
	}
	if len(os.Args) == 3 && os.Args[1] == "doctor-helper-runfrom" {
		os.Exit(helperRunFrom(os.Args[2]))
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
	np := netlab.New(t).Pair()
	return &pair{lab: np.Lab, cli: np.Client, srv: np.Server, cliAddr: np.ClientAddr, srvAddr: np.ServerAddr}
}

func portOf(ln net.Listener) uint16 { return testnet.AddrPort(ln).Port() }

// agent answers for a host as an agent on it would: it gathers the host's
// evidence inside its namespace and narrows it to the connection asked
// about (from an asker it does not know).
type agent struct{ h *netlab.Host }

func (a agent) Evidence(ctx context.Context, addr netip.AddrPort) (doctor.HostEvidence, error) {
	var ev doctor.HostEvidence
	err := a.h.Do(func() error {
		ev = doctor.Gather(ctx, nil, nil).Narrow(netip.AddrPort{}, addr)
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
	e, err := endpoint.ParseEndpoint(ep, 0)
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

// setup prepares one case in a fresh client/server pair and says what to check.
type setup struct {
	ep       string
	timeout  time.Duration // zero: quick
	resolver *net.Resolver
}

// view is one place the doctor runs from, and what it must conclude there.
type view struct {
	side side
	want want
}

func listenServe(t *testing.T, h *netlab.Host, network, addr string) uint16 {
	t.Helper()
	ln := h.Listen(t, network, addr)
	testnet.ServeOn(t, ln, nil) // each connection held until the test ends
	return portOf(ln)
}

// TestCauses produces every cause id for real in network namespaces, and
// asserts the cause (not just the class) from each place it can be seen:
// on the server, from a client alone, and from a client asking an agent.
func TestCauses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, p *pair) setup
		views []view
		class string // the probe class the report must carry, when set
		extra func(t *testing.T, sd side, r *doctor.Report)
	}{{
		name: "reachable",
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: p.srvEP(listenServe(t, p.srv, "tcp", "0.0.0.0:0"))}
		},
		views: []view{
			{onServer, want{cause: doctor.Reachable, confidence: doctor.Confirmed, reachable: true}},
			{onClient, want{cause: doctor.Reachable, confidence: doctor.Confirmed, reachable: true}},
			{viaAgent, want{cause: doctor.Reachable, confidence: doctor.Confirmed, reachable: true}},
		},
		class: "open",
	}, {
		name: "not-listening",
		// The namespace is new and empty: nothing listens on any port.
		setup: func(t *testing.T, p *pair) setup { return setup{ep: p.srvEP(7708)} },
		views: []view{
			{onServer, want{cause: doctor.NotListening, confidence: doctor.Confirmed, evidence: "nothing listens on port 7708"}},
			{viaAgent, want{cause: doctor.NotListening, confidence: doctor.Confirmed, evidence: "nothing listens on port 7708"}},
			{onClient, want{cause: doctor.NotListening, confidence: doctor.Likely, evidence: "answered the SYN with a reset"}},
		},
		class: "refused",
		extra: func(t *testing.T, sd side, r *doctor.Report) {
			// From the client alone: the alternatives, and what tells them apart.
			if sd == onClient && (!hasCause(r, doctor.WrongPort) || !hasCause(r, doctor.FirewallReject) || len(r.Next) == 0) {
				t.Errorf("client view lists %+v, next %q; want the alternatives and what tells them apart", r.Findings, r.Next)
			}
		},
	}, {
		name: "wrong-port",
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: p.srvEP(listenServe(t, p.srv, "tcp", "0.0.0.0:0") + 1)} // free: the namespace has no other sockets
		},
		views: []view{
			{onServer, want{cause: doctor.WrongPort, confidence: doctor.Likely, evidence: "nothing listens on port"}},
			{viaAgent, want{cause: doctor.WrongPort, confidence: doctor.Likely, evidence: "nothing listens on port"}},
		},
	}, {
		name: "loopback-only",
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: p.srvEP(listenServe(t, p.srv, "tcp", "127.0.0.1:0"))}
		},
		views: []view{
			{onServer, want{cause: doctor.LoopbackOnly, confidence: doctor.Confirmed, evidence: "listens on 127.0.0.1:"}},
			{viaAgent, want{cause: doctor.LoopbackOnly, confidence: doctor.Confirmed, evidence: "listens on 127.0.0.1:"}},
		},
	}, {
		name: "address-family-mismatch/ipv6-only",
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: p.srvEP(listenServe(t, p.srv, "tcp6", "[::]:0"))} // Go makes tcp6 wildcard sockets IPv6-only
		},
		views: []view{
			{onServer, want{cause: doctor.AddressFamilyMismatch, confidence: doctor.Confirmed, evidence: "IPv6-only"}},
			{viaAgent, want{cause: doctor.AddressFamilyMismatch, confidence: doctor.Confirmed, evidence: "IPv6-only"}},
		},
	}, {
		name: "address-family-mismatch/ipv4-only-dialled-on-ipv6",
		setup: func(t *testing.T, p *pair) setup {
			_, srv6 := p.lab.LinkV6(p.cli, p.srv)
			return setup{ep: netip.AddrPortFrom(srv6, listenServe(t, p.srv, "tcp4", "0.0.0.0:0")).String()}
		},
		views: []view{
			{onServer, want{cause: doctor.AddressFamilyMismatch, confidence: doctor.Confirmed, evidence: "listens on 0.0.0.0:"}},
			{viaAgent, want{cause: doctor.AddressFamilyMismatch, confidence: doctor.Confirmed, evidence: "listens on 0.0.0.0:"}},
		},
		extra: func(t *testing.T, _ side, r *doctor.Report) { checkDetail(t, r, "icmp", "echo reply from fd00:") },
	}, {
		name: "firewall-drop/iptables",
		setup: func(t *testing.T, p *pair) setup {
			port := listenServe(t, p.srv, "tcp", "0.0.0.0:0")
			p.srv.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
			return setup{ep: p.srvEP(port)}
		},
		views: []view{
			{onServer, want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "-A INPUT -p tcp -m tcp --dport"}},
			{viaAgent, want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "-A INPUT -p tcp -m tcp --dport"}},
			// The client sees silence, but the host answers ping: a DROP rule is likely.
			{onClient, want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: "answers ping"}},
		},
		class: "timeout",
	}, {
		name: "firewall-drop/loopback-interface",
		// A rule matching the interface (-i lo), as most host firewalls
		// write loopback rules: the doctor knows a target on this host is
		// reached over lo, so the rule is confirmed, not "possible" (which
		// left the absent listener to be blamed for a timeout).
		setup: func(t *testing.T, p *pair) setup {
			p.srv.Iptables(t, "-A", "INPUT", "-i", "lo", "-p", "tcp", "--dport", "5999", "-j", "DROP")
			return setup{ep: "127.0.0.1:5999"}
		},
		views: []view{{onServer, want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "-A INPUT -i lo -p tcp -m tcp --dport 5999 -j DROP"}}},
		class: "timeout",
	}, {
		name: "firewall-drop/default-deny-policy",
		setup: func(t *testing.T, p *pair) setup {
			port := listenServe(t, p.srv, "tcp", "0.0.0.0:0")
			p.srv.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
			p.srv.Iptables(t, "-P", "INPUT", "DROP")
			return setup{ep: p.srvEP(port)}
		},
		views: []view{
			{onServer, want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "chain INPUT: -P INPUT DROP"}},
			{viaAgent, want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "chain INPUT: -P INPUT DROP"}},
		},
	}, {
		name: "firewall-drop/this-host-outgoing",
		setup: func(t *testing.T, p *pair) setup {
			port := listenServe(t, p.srv, "tcp", "0.0.0.0:0")
			p.cli.Iptables(t, "-A", "OUTPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
			return setup{ep: p.srvEP(port)}
		},
		views: []view{{onClient, want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "chain OUTPUT: -A OUTPUT -p tcp -m tcp --dport"}}},
	}, {
		name: "firewall-drop/nftables-ipv6",
		setup: func(t *testing.T, p *pair) setup {
			_, srv6 := p.lab.LinkV6(p.cli, p.srv)
			port := listenServe(t, p.srv, "tcp6", "[::]:0")
			p.srv.Nft(t, fmt.Sprintf("table inet guard {\n chain input {\n  type filter hook input priority 0;\n  tcp dport %d drop\n }\n}\n", port))
			return setup{ep: netip.AddrPortFrom(srv6, port).String()}
		},
		views: []view{
			{onClient, want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: "answers ping"}},
			{viaAgent, want{cause: doctor.FirewallDrop, confidence: doctor.Confirmed, evidence: "inet guard, chain input: tcp dport"}},
		},
		extra: func(t *testing.T, _ side, r *doctor.Report) { checkDetail(t, r, "path", "itself answered at hop 1") },
	}, {
		name: "firewall-reject/nftables-tcp-reset",
		setup: func(t *testing.T, p *pair) setup {
			port := listenServe(t, p.srv, "tcp", "0.0.0.0:0")
			p.srv.Nft(t, fmt.Sprintf("table inet guard {\n chain input {\n  type filter hook input priority 0;\n  tcp dport %d reject with tcp reset\n }\n}\n", port))
			return setup{ep: p.srvEP(port)}
		},
		views: []view{
			{onServer, want{cause: doctor.FirewallReject, confidence: doctor.Confirmed, evidence: "reject with tcp reset"}},
			{viaAgent, want{cause: doctor.FirewallReject, confidence: doctor.Confirmed, evidence: "reject with tcp reset"}},
		},
		class: "refused",
	}, {
		name: "firewall-reject/iptables-admin-prohibited",
		setup: func(t *testing.T, p *pair) setup {
			port := listenServe(t, p.srv, "tcp", "0.0.0.0:0")
			p.srv.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
			return setup{ep: p.srvEP(port)}
		},
		views: []view{{viaAgent, want{cause: doctor.FirewallReject, confidence: doctor.Confirmed, evidence: "icmp-admin-prohibited"}}},
		class: "host-unreachable",
	}, {
		name: "host-down/neighbour-discovery-fails",
		// Neighbour discovery gives up after about 3s: with a longer timeout
		// the kernel says EHOSTUNREACH.
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: netip.AddrPortFrom(p.lab.Unowned(t, p.srvAddr), 80).String(), timeout: 5 * time.Second}
		},
		views: []view{{onClient, want{cause: doctor.HostDown, confidence: doctor.Confirmed, evidence: "neighbour discovery got no answer"}}},
		class: "host-unreachable",
	}, {
		name: "host-down/silent",
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: netip.AddrPortFrom(p.lab.Unowned(t, p.srvAddr), 80).String()}
		},
		views: []view{{onClient, want{cause: doctor.HostDown, confidence: doctor.Likely, evidence: "answers neither ping nor SYN"}}},
		class: "timeout",
	}, {
		name: "no-route/no-table-entry",
		// Lab hosts have no default route: 198.19.200.1 is nowhere.
		setup: func(t *testing.T, p *pair) setup { return setup{ep: "198.19.200.1:80"} },
		views: []view{{onClient, want{cause: doctor.NoRoute, confidence: doctor.Confirmed, evidence: "network is unreachable"}}},
		class: "net-unreachable",
	}, {
		name: "no-route/unreachable-route",
		setup: func(t *testing.T, p *pair) setup {
			p.cli.AddRoute(t, "unreachable", "198.19.7.0/24")
			return setup{ep: "198.19.7.1:80"}
		},
		views: []view{{onClient, want{cause: doctor.NoRoute, confidence: doctor.Confirmed, evidence: `"unreachable 198.19.7.0/24"`}}},
		class: "host-unreachable",
	}, {
		name: "dns",
		// Nothing serves DNS in the lab: the lookup fails inside it.
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: "db.reach.test:5432", resolver: p.cli.Resolver(netip.AddrPortFrom(p.srvAddr, 53))}
		},
		views: []view{{onClient, want{cause: doctor.DNS, confidence: doctor.Confirmed, evidence: "lookup via the configured resolver"}}},
		class: "dns",
		extra: func(t *testing.T, _ side, r *doctor.Report) {
			if !strings.Contains(r.Findings[0].Issue, "Nothing serves DNS at the resolver") {
				t.Errorf("issue %q, want the resolver without a DNS server named", r.Findings[0].Issue)
			}
		},
	}, {
		name: "dns/resolver-unreachable",
		// The resolver's address is on no route of the client.
		setup: func(t *testing.T, p *pair) setup {
			return setup{ep: "db.reach.test:5432", resolver: p.cli.Resolver(netip.MustParseAddrPort("198.19.9.1:53"))}
		},
		views: []view{{onClient, want{cause: doctor.DNS, confidence: doctor.Confirmed, evidence: "network is unreachable"}}},
		class: "dns",
		extra: func(t *testing.T, _ side, r *doctor.Report) {
			if f := r.Findings[0]; !strings.Contains(f.Issue, "cannot reach its resolver 198.19.9.1:53") || !strings.Contains(f.Fix, "ip route get 198.19.9.1") {
				t.Errorf("finding %+v, want the unreachable resolver named with the route to check", f)
			}
		},
	}, {
		name: "dns/no-such-name",
		// A lab DNS server that knows another name only.
		setup: func(t *testing.T, p *pair) setup {
			ns := serveDNS(t, p.srv, p.srvAddr, "other.reach.test.", []netip.Addr{p.srvAddr})
			return setup{ep: "db.reach.test:5432", resolver: p.cli.Resolver(ns)}
		},
		views: []view{{onClient, want{cause: doctor.DNS, confidence: doctor.Confirmed, evidence: "no such host"}}},
		class: "dns",
		extra: func(t *testing.T, _ side, r *doctor.Report) {
			if !strings.Contains(r.Findings[0].Issue, "does not exist") {
				t.Errorf("issue %q, want the missing name named", r.Findings[0].Issue)
			}
		},
	}, {
		name: "dns/resolver-silent",
		// The resolver's address drops every query.
		setup: func(t *testing.T, p *pair) setup {
			p.srv.Iptables(t, "-A", "INPUT", "-p", "udp", "--dport", "53", "-j", "DROP")
			return setup{ep: "db.reach.test:5432", resolver: p.cli.Resolver(netip.AddrPortFrom(p.srvAddr, 53))}
		},
		views: []view{{onClient, want{cause: doctor.DNS, confidence: doctor.Confirmed, evidence: "timed out"}}},
		class: "dns",
		extra: func(t *testing.T, _ side, r *doctor.Report) {
			if !strings.Contains(r.Findings[0].Issue, "resolver did not answer") {
				t.Errorf("issue %q, want the silent resolver named", r.Findings[0].Issue)
			}
		},
	}, {
		name: "overloaded",
		setup: func(t *testing.T, p *pair) setup {
			port := fullBacklog(t, p)
			return setup{ep: p.srvEP(port)}
		},
		views: []view{
			{onServer, want{cause: doctor.Overloaded, confidence: doctor.Confirmed, evidence: "waiting for accept, backlog 1"}},
			{viaAgent, want{cause: doctor.Overloaded, confidence: doctor.Confirmed, evidence: "waiting for accept, backlog 1"}},
		},
		class: "timeout",
	}, {
		name: "server-hung",
		setup: func(t *testing.T, p *pair) setup {
			const port = 7000 // the namespace is new: the port is free
			cmd := p.srv.Start(t, os.Args[0], "doctor-helper-listen", fmt.Sprintf("0.0.0.0:%d", port))
			waitFor(t, p.srv, port, func(s sockets.Socket) bool { return len(s.Processes) > 0 })
			if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT) })
			waitFor(t, p.srv, port, func(s sockets.Socket) bool { return s.ProcessState == "stopped" })
			return setup{ep: p.srvEP(port)}
		},
		views: []view{
			{onServer, want{cause: doctor.ServerHung, confidence: doctor.Confirmed, evidence: "but is stopped (state T)"}},
			{viaAgent, want{cause: doctor.ServerHung, confidence: doctor.Confirmed, evidence: "but is stopped (state T)"}},
		},
		class: "open", // the kernel still completes the handshake
	}, {
		name: "reset-by-peer",
		setup: func(t *testing.T, p *pair) setup {
			ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
			testnet.ServeOn(t, ln, testnet.Reset)
			return setup{ep: p.srvEP(portOf(ln))}
		},
		views: []view{
			{onClient, want{cause: doctor.ResetByPeer, confidence: doctor.Confirmed, evidence: "then an RST came"}},
			{onServer, want{cause: doctor.ResetByPeer, confidence: doctor.Confirmed, evidence: "holds the listening socket"}},
		},
		class: "reset",
	}, {
		name: "closed-by-peer",
		setup: func(t *testing.T, p *pair) setup {
			ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
			testnet.ServeOn(t, ln, testnet.HangUp)
			return setup{ep: p.srvEP(portOf(ln))}
		},
		views: []view{
			{onClient, want{cause: doctor.ClosedByPeer, confidence: doctor.Confirmed, evidence: "closed (EOF)"}},
			{onServer, want{cause: doctor.ClosedByPeer, confidence: doctor.Confirmed, evidence: "closed (EOF)"}},
		},
		class: "closed-by-peer",
	}, {
		name: "local-error/ephemeral-ports-exhausted",
		setup: func(t *testing.T, p *pair) setup {
			ep := p.srvEP(listenServe(t, p.srv, "tcp", "0.0.0.0:0"))
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
			return setup{ep: ep}
		},
		views: []view{{onClient, want{cause: doctor.LocalError, confidence: doctor.Confirmed, evidence: "cannot assign requested address"}}},
		class: "local-error",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t)
			su := tt.setup(t, p)
			if su.timeout == 0 {
				su.timeout = quick
			}
			for _, v := range tt.views {
				r := p.run(t, v.side, su.ep, su.timeout, su.resolver)
				check(t, r, v.want)
				if tt.class != "" && string(r.Class) != tt.class {
					t.Errorf("%v: class %s, want %s", v.side, r.Class, tt.class)
				}
				if tt.extra != nil {
					tt.extra(t, v.side, r)
				}
			}
		})
	}
}

// fullBacklog makes a listener in srv with backlog 1 that never accepts,
// fills its queue from cli and returns its port.
func fullBacklog(t *testing.T, p *pair) uint16 {
	t.Helper()
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
	// The kernel queues backlog+1 connections.
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := p.cli.DialContext(ctx, "tcp", p.srvEP(port))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	waitFor(t, p.srv, port, func(s sockets.Socket) bool { return s.RecvQ > s.SendQ })
	return port
}

// waitFor polls the listener on port inside h until ok holds (bounded).
func waitFor(t *testing.T, h *netlab.Host, port uint16, ok func(sockets.Socket) bool) {
	t.Helper()
	var socks []sockets.Socket
	if !testnet.Poll(10*time.Second, func() bool {
		if err := h.Do(func() (err error) {
			socks, err = sockets.Listening(context.Background(), port)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(socks, ok)
	}) {
		t.Fatalf("listener on port %d never reached the wanted state: %v", port, socks)
	}
}

// routed is cli -> rtr -> srv, the router forwarding between two links.
type routed struct {
	pair
	rtr  *netlab.Host
	rtrA netip.Addr // the router's address on the client's link
}

func newRouted(t *testing.T) *routed {
	t.Helper()
	netlab.Require(t)
	nr := netlab.New(t).Routed()
	return &routed{pair: pair{lab: nr.Lab, cli: nr.Client, srv: nr.Server, cliAddr: nr.ClientAddr, srvAddr: nr.ServerAddr},
		rtr: nr.Router, rtrA: nr.RouterClientSide}
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
	testnet.ServeOn(t, ln, nil) // each connection held until the test ends
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
	// The lab router answers every failed neighbour lookup: without this its
	// per-peer ICMP rate limit (shared with the path probe's time-exceeded
	// replies) sometimes swallowed the host-unreachable under load.
	r.rtr.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	gone := r.lab.Unowned(t, r.srvAddr)
	// First, with a short timeout, while the router is still trying
	// neighbour discovery (about 3s): the client sees only silence.
	rep := r.run(t, onClient, netip.AddrPortFrom(gone, 80).String(), quick, nil)
	check(t, rep, want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: fmt.Sprintf("last answer came from %s at hop 1", r.rtrA)})
	if !hasCause(rep, doctor.HostDown) {
		t.Errorf("a silent host behind a router: host-down not among the possible causes")
	}
	// Then long enough for the router to give up and say host unreachable.
	rep = r.run(t, onClient, netip.AddrPortFrom(gone, 80).String(), 5*time.Second, nil)
	check(t, rep, want{cause: doctor.HostDown, confidence: doctor.Likely, evidence: "no route to host"})
	if rep.Class != "host-unreachable" {
		t.Errorf("class %s, want host-unreachable", rep.Class)
	}
	checkDetail(t, rep, "path", fmt.Sprintf("1 %s (time exceeded", r.rtrA))
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
	testnet.ServeOn(t, ln, nil) // each connection held until the test ends
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

// A server that resets every other connection: the repeated probes tell a
// flapping endpoint from a steady failure.
func TestIntermittent(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ln := p.srv.Listen(t, "tcp", "0.0.0.0:0")
	// Accepted and decided in the order the probes connect, one at a time:
	// testnet's server hands each connection to a goroutine of its own,
	// which would not keep that order.
	done := make(chan struct{})
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if n%2 == 0 {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				continue
			}
			conns = append(conns, c) // held until the test ends
		}
	}()
	r := p.run(t, onClient, p.srvEP(portOf(ln)), quick, nil)
	check(t, r, want{cause: doctor.ResetByPeer, confidence: doctor.Confirmed})
	// The held connection takes one of the server's accepts, so which of
	// the three probes were reset depends on when it came.
	if len(r.Addresses) != 1 || !r.Addresses[0].Intermittent ||
		!slices.Contains(r.Addresses[0].Probes, "open") || !slices.Contains(r.Addresses[0].Probes, "reset") ||
		!strings.Contains(r.Verdict, "is intermittent: "+strings.Join(r.Addresses[0].Probes, ", ")) {
		t.Errorf("verdict %q, addresses %+v: want the flapping named", r.Verdict, r.Addresses)
	}
}

// Echo works over an unprivileged ICMP socket when ping_group_range admits
// the group, and over a raw socket otherwise (we run as root).
func TestEchoSockets(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	ep := p.srvEP(7)
	// A generous timeout for the ladder on a loaded CI machine. The echo
	// itself waits at most 1s whatever the timeout (ICMPCheck); the reply
	// comes in microseconds now that netlab links are up before use (a
	// lost first packet was what once missed the window).
	const patient = 6 * time.Second
	r := p.run(t, onClient, ep, patient, nil)
	checkDetail(t, r, "icmp", "(raw socket)")
	p.cli.Sysctl(t, "net.ipv4.ping_group_range", fmt.Sprintf("%d %d", os.Getegid(), os.Getegid()))
	r = p.run(t, onClient, ep, patient, nil)
	checkDetail(t, r, "icmp", fmt.Sprintf("echo reply from %s", p.srvAddr))
	checkDetail(t, r, "icmp", "(unprivileged ICMP socket)")
}

// The router drops the port; the agent on the target shows no rule of its
// own, so the doctor points at the path.
func TestRoutedFirewallOnPath(t *testing.T) {
	t.Parallel()
	r := newRouted(t)
	ln := r.srv.Listen(t, "tcp", "0.0.0.0:0")
	testnet.ServeOn(t, ln, nil) // each connection held until the test ends
	port := portOf(ln)
	r.rtr.Iptables(t, "-A", "FORWARD", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
	rep := r.run(t, viaAgent, r.srvEP(port), quick, nil)
	check(t, rep, want{cause: doctor.FirewallDrop, confidence: doctor.Likely, evidence: "reports no rule of its own that drops it"})
	if f := rep.Findings[0]; !strings.Contains(f.Issue, "on the path") {
		t.Errorf("issue %q, want the path blamed", f.Issue)
	}
	// The agent showed the host up and its accept queue empty.
	if hasCause(rep, doctor.Overloaded) || hasCause(rep, doctor.HostDown) {
		t.Errorf("findings %+v: the agent's evidence rules out overloaded and host-down", rep.Findings)
	}
}
