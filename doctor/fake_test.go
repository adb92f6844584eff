package doctor

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// fakeHost is a host whose sockets and firewall the test writes.
type fakeHost struct {
	addrs []netip.Prefix
	socks []sockets.Socket
	rules *firewall.Ruleset
}

func (f fakeHost) Listening(_ context.Context, keep func(uint16) bool) ([]sockets.Socket, error) {
	var out []sockets.Socket
	for _, s := range f.socks {
		if keep == nil || keep(s.Local.Port()) {
			out = append(out, s)
		}
	}
	return out, nil
}
func (f fakeHost) Addresses() ([]netip.Prefix, error)              { return f.addrs, nil }
func (f fakeHost) Read(context.Context) (*firewall.Ruleset, error) { return f.rules, nil }

// Peers: a fake host has no containers, and says it looked.
func (f fakeHost) Peers(context.Context) (sockets.Peers, error) {
	return sockets.Peers{Peers: []sockets.Peer{}, Sockets: []sockets.Socket{}}, nil
}

// iptablesRules parses iptables-save output.
func iptablesRules(t testing.TB, text string) *firewall.Ruleset {
	t.Helper()
	rs, err := firewall.ParseIptablesSave(text, "ip")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// dialClass fails every dial with class c (nil error when c is Open).
func dialClass(c probe.Class) probe.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if c == probe.Open {
			a, b := net.Pipe()
			go func() { b.Write([]byte("hello")); b.Close() }() // a banner: open, not closed-by-peer
			return a, nil
		}
		return nil, c
	}
}

func listener(addr string, state string, rq, sq uint32) sockets.Socket {
	return sockets.Socket{Proto: "tcp", Local: netip.MustParseAddrPort(addr), State: sockets.StateListen, RecvQ: rq, SendQ: sq,
		Processes: []sockets.Process{{PID: 812, Command: "postgres"}}, ProcessState: state}
}

// TestCausesWithFakes runs the ladder against fake hosts, without root or a
// network: the analysis from socket tables and rules to causes.
func TestCausesWithFakes(t *testing.T) {
	self := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("198.18.0.2/24")}
	dropRule := iptablesRules(t, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 5432 -j DROP\nCOMMIT\n")
	tests := []struct {
		name  string
		class probe.Class
		host  fakeHost
		cause Cause
		conf  Confidence
	}{
		{"reachable", probe.Open, fakeHost{self, []sockets.Socket{listener("0.0.0.0:5432", "sleeping", 0, 128)}, nil}, Reachable, Confirmed},
		{"not listening", probe.Refused, fakeHost{self, nil, nil}, NotListening, Confirmed},
		{"wrong port", probe.Refused, fakeHost{self, []sockets.Socket{listener("0.0.0.0:5433", "sleeping", 0, 128)}, nil}, WrongPort, Likely},
		{"digits swapped", probe.Refused, fakeHost{self, []sockets.Socket{listener("0.0.0.0:4532", "sleeping", 0, 128)}, nil}, WrongPort, Likely},
		{"far port is not a slip", probe.Refused, fakeHost{self, []sockets.Socket{listener("0.0.0.0:8080", "sleeping", 0, 128)}, nil}, NotListening, Confirmed},
		{"loopback only", probe.Refused, fakeHost{self, []sockets.Socket{listener("127.0.0.1:5432", "sleeping", 0, 128)}, nil}, LoopbackOnly, Confirmed},
		{"another address", probe.Refused, fakeHost{self, []sockets.Socket{listener("198.18.0.9:5432", "sleeping", 0, 128)}, nil}, NotListening, Confirmed},
		{"ipv6 only", probe.Refused, fakeHost{self, []sockets.Socket{{Proto: "tcp6", Local: netip.MustParseAddrPort("[::]:5432"), State: sockets.StateListen, V6Only: true}}, nil}, AddressFamilyMismatch, Confirmed},
		{"overloaded", probe.Timeout, fakeHost{self, []sockets.Socket{listener("0.0.0.0:5432", "sleeping", 129, 128)}, nil}, Overloaded, Confirmed},
		{"stopped", probe.Open, fakeHost{self, []sockets.Socket{listener("0.0.0.0:5432", "stopped", 3, 128)}, nil}, ServerHung, Confirmed},
		{"dropped", probe.Timeout, fakeHost{self, []sockets.Socket{listener("0.0.0.0:5432", "sleeping", 0, 128)}, dropRule}, FirewallDrop, Confirmed},
		{"other host refuses", probe.Refused, fakeHost{[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}, nil, nil}, NotListening, Likely},
		{"other host silent", probe.Timeout, fakeHost{[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}, nil, nil}, FirewallDrop, Likely},
	}
	ladder := []Stage{{DNSCheck}, {TCPCheck, HostCheck}, {SocketsCheck, FirewallCheck}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := Options{Dial: dialClass(tt.class), Sockets: tt.host, Firewall: tt.host, Ladder: ladder, Probes: 1}
			r := Run(context.Background(), endpoint.Endpoint{Host: "198.18.0.2", Port: 5432}, opt)
			if r.Cause != tt.cause || r.Confidence != tt.conf {
				t.Errorf("cause %s (%s), want %s (%s); findings %+v", r.Cause, r.Confidence, tt.cause, tt.conf, r.Findings)
			}
			if len(r.Checks) != 5 {
				t.Errorf("%d check records, want 5", len(r.Checks))
			}
		})
	}
}

// On the target host a wrong-port finding comes from the socket table, so the
// report does not add the client's guesses (a firewall REJECT, "run check on
// the host itself"): the host's own table and rules were read.
func TestWrongPortOnHostAddsNoClientGuesses(t *testing.T) {
	self := []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")}
	host := fakeHost{self, []sockets.Socket{listener("0.0.0.0:5433", "sleeping", 0, 128)}, nil}
	opt := Options{Dial: dialClass(probe.Refused), Sockets: host, Firewall: host,
		Ladder: []Stage{{DNSCheck}, {TCPCheck, HostCheck}, {SocketsCheck, FirewallCheck}}, Probes: 1}
	r := Run(context.Background(), endpoint.Endpoint{Host: "198.18.0.2", Port: 5432}, opt)
	if r.Cause != WrongPort || len(r.Findings) != 1 || len(r.Next) != 0 {
		t.Errorf("cause %s, findings %+v, next %q; want wrong-port alone", r.Cause, r.Findings, r.Next)
	}
}

func TestSimilarPort(t *testing.T) {
	for _, tt := range []struct {
		a, b uint16
		want bool
	}{{5432, 5433, true}, {8080, 8008, true}, {5432, 54320, true}, {5432, 15264, false}, {80, 8080, false}, {3306, 33060, true}, {22, 22, false}, {1, 11, true}} {
		if got := similarPort(tt.a, tt.b); got != tt.want {
			t.Errorf("similarPort(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// The path check reads the host check's view: a target on this host that
// times out is not traced (there is no path). On loopback, so that a path
// check that traced it anyway would stay on this host.
func TestPathSkipsThisHost(t *testing.T) {
	self := fakeHost{addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}
	opt := Options{Timeout: 200 * time.Millisecond, Dial: dialClass(probe.Timeout), Sockets: self, Firewall: self,
		Ladder: []Stage{{DNSCheck}, {TCPCheck, HostCheck}, {PathCheck}}, Probes: 1}
	r := Run(context.Background(), endpoint.Endpoint{Host: "127.0.0.1", Port: 5432}, opt)
	if c := r.Checks[3]; c.Name != "path" || c.Status != Skip || c.Detail != "not needed: the target is this host" {
		t.Errorf("path check on this host: %+v", c)
	}
}
