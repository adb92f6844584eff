package probe_test

import (
	"errors"
	"fmt"
	"net/netip"
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

// twoLinks is a client joined to a server by two links, A and B. The
// server's address on A is the target; the client reaches it by A, as the
// routes prefer, and by B only through a route of a higher metric that
// nothing but a socket bound to B's interface takes.
type twoLinks struct {
	client, server *netlab.Host
	clientA        netip.Addr // the client's address on link A, its default source
	clientB        netip.Addr // the client's address on link B
	serverA        netip.Addr // the target
	ifA, ifB       string     // the client's interfaces on A and B
	serverIfA      string     // the server's interface on A
}

func newTwoLinks(t *testing.T) *twoLinks {
	t.Helper()
	p := netlab.New(t).Pair() // link A
	l := &twoLinks{client: p.Client, server: p.Server, clientA: p.ClientAddr, serverA: p.ServerAddr}
	var serverB netip.Addr
	l.clientB, serverB = p.Lab.Link(l.client, l.server)
	l.ifA, l.ifB = l.client.InterfaceOf(t, l.clientA), l.client.InterfaceOf(t, l.clientB)
	l.serverIfA = l.server.InterfaceOf(t, l.serverA)
	l.client.AddRoute(t, netip.PrefixFrom(l.serverA, 24).Masked().String(), "via", serverB.String(), "dev", l.ifB, "metric", "500")
	return l
}

// serve listens on the target; the server then resets every connection
// attempt that matches the iptables match (a refusal, immediate).
func (l *twoLinks) serve(t *testing.T, match ...string) endpoint.Endpoint {
	t.Helper()
	ln := l.server.Listen(t, "tcp", netip.AddrPortFrom(l.serverA, 0).String())
	ep := endpoint.FromAddrPort(testnet.ServeOn(t, ln, testnet.Drain))
	rule := append([]string{"-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(ep.Port))}, match...)
	l.server.Iptables(t, append(rule, "-j", "REJECT", "--reject-with", "tcp-reset")...)
	return ep
}

// run probes ep from inside the client, with the probe's own dialer, by
// Run and by Dial (which goes through net.Dialer), and checks they agree.
func (l *twoLinks) run(t *testing.T, ep endpoint.Endpoint, opt probe.Options) probe.Result {
	t.Helper()
	opt.Timeout = 5 * time.Second
	var r, kept probe.Result
	err := l.client.Do(func() error {
		r = probe.Run(t.Context(), ep, opt)
		conn, res := probe.Dial(t.Context(), ep, opt)
		if conn != nil {
			conn.Close()
		}
		kept = res
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v source %v interface %q -> %s local %v: %v", ep, opt.Source, opt.Interface, r.Class, r.Local, r.Err)
	if kept.Class != r.Class || kept.Errno != r.Errno || kept.Local.Addr() != r.Local.Addr() || fmt.Sprint(kept.Err) != fmt.Sprint(r.Err) {
		t.Errorf("Dial and Run disagree:\n%s %d %v %v\n%s %d %v %v", kept.Class, kept.Errno, kept.Local, kept.Err, r.Class, r.Errno, r.Local, r.Err)
	}
	return r
}

// The server accepts only the client's address on link B: the source the
// probe binds decides.
func TestSourceInLab(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	l := newTwoLinks(t)
	ep := l.serve(t, "!", "-s", l.clientB.String())

	if r := l.run(t, ep, probe.Options{}); r.Class != probe.Refused {
		t.Fatalf("from the default source: %s, want refused (the rule)", r.Class)
	}
	r := l.run(t, ep, probe.Options{Source: l.clientB})
	if r.Class != probe.Open || r.Local.Addr() != l.clientB {
		t.Fatalf("from %v: %s from %v, want open from it", l.clientB, r.Class, r.Local)
	}
	if r := l.run(t, ep, probe.Options{Source: l.clientA}); r.Class != probe.Refused {
		t.Fatalf("from %v: %s, want refused", l.clientA, r.Class)
	}
	// The same dialer, handed to code that takes a DialFunc.
	r = l.run(t, ep, probe.Options{Dial: probe.LocalDialer(l.clientB, "")})
	if r.Class != probe.Open || r.Local.Addr() != l.clientB {
		t.Fatalf("LocalDialer from %v: %s from %v, want open from it", l.clientB, r.Class, r.Local)
	}
}

// The server refuses what arrives on link A: the interface the probe binds
// decides, through the route only a socket bound to link B takes.
func TestInterfaceInLab(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	l := newTwoLinks(t)
	ep := l.serve(t, "-i", l.serverIfA)

	if r := l.run(t, ep, probe.Options{}); r.Class != probe.Refused {
		t.Fatalf("by the routes' choice: %s, want refused (the rule on link A)", r.Class)
	}
	if r := l.run(t, ep, probe.Options{Interface: l.ifA}); r.Class != probe.Refused {
		t.Fatalf("by %s: %s, want refused", l.ifA, r.Class)
	}
	r := l.run(t, ep, probe.Options{Interface: l.ifB})
	if r.Class != probe.Open || r.Local.Addr() != l.clientB {
		t.Fatalf("by %s: %s from %v, want open from %v", l.ifB, r.Class, r.Local, l.clientB)
	}
}

// Values this host cannot honour fail the probe as local errors that say
// what is there instead, and CheckLocal says the same before any probe.
func TestSourceAndInterfaceErrors(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	l := newTwoLinks(t)
	ep := endpoint.FromAddrPort(netip.AddrPortFrom(l.serverA, 80))
	stranger := netip.MustParseAddr("198.18.0.9") // on no link of this lab's client
	if stranger == l.clientA || stranger == l.clientB {
		t.Fatalf("lab addresses moved: %v %v", l.clientA, l.clientB)
	}
	tests := []struct {
		name  string
		opt   probe.Options
		ep    endpoint.Endpoint
		errno syscall.Errno
		is    error
		msg   []string
	}{
		{
			name: "source not of this host", opt: probe.Options{Source: stranger}, ep: ep, errno: syscall.EADDRNOTAVAIL,
			msg: []string{"198.18.0.9 is not an address of this host: bind: cannot assign requested address; use one of 127.0.0.1 (lo), " +
				l.clientA.String() + " (" + l.ifA + "), " + l.clientB.String() + " (" + l.ifB + ")"},
		},
		{
			name: "no such interface", opt: probe.Options{Interface: "eth7"}, ep: ep, errno: syscall.ENODEV,
			msg: []string{"no interface eth7: setsockopt SO_BINDTODEVICE: no such device; interfaces here: lo, " + l.ifA + ", " + l.ifB},
		},
		{
			name: "source of the other family", opt: probe.Options{Source: l.clientA},
			ep: endpoint.Endpoint{Host: "fd00::2", Port: 80}, is: probe.ErrSourceFamily,
			msg: []string{"source " + l.clientA.String() + " is IPv4 and cannot reach fd00::2, which is IPv6"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.run(t, tt.ep, tt.opt)
			if r.Class != probe.LocalError || r.Errno != tt.errno {
				t.Fatalf("class %s errno %d, want local-error errno %d: %v", r.Class, r.Errno, tt.errno, r.Err)
			}
			var se *probe.SourceError
			var ie *probe.InterfaceError
			switch {
			case tt.opt.Source.IsValid() && !errors.As(r.Err, &se):
				t.Errorf("%v is not a *probe.SourceError", r.Err)
			case tt.opt.Interface != "" && !errors.As(r.Err, &ie):
				t.Errorf("%v is not a *probe.InterfaceError", r.Err)
			}
			if tt.errno != 0 && !errors.Is(r.Err, tt.errno) || tt.is != nil && !errors.Is(r.Err, tt.is) {
				t.Errorf("errors.Is(%v) misses %v %v", r.Err, tt.errno, tt.is)
			}
			for _, m := range tt.msg {
				if !strings.Contains(r.Err.Error(), m) {
					t.Errorf("error\n%s\nlacks\n%s", r.Err, m)
				}
			}
			if tt.is != nil { // a mismatch of families is the caller's to see
				return
			}
			var err error
			l.client.Do(func() error { err = probe.CheckLocal(tt.opt); return nil })
			if err == nil || !strings.Contains(err.Error(), tt.msg[0]) {
				t.Errorf("CheckLocal: %v, want %s", err, tt.msg[0])
			}
		})
	}
	var err error
	l.client.Do(func() error { err = probe.CheckLocal(probe.Options{Source: l.clientB, Interface: l.ifA}); return nil })
	if err != nil {
		t.Errorf("CheckLocal of the client's own address and interface: %v", err)
	}
}
