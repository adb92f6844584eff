package discover_test

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/reach-tools/reach/discover"
	"github.com/reach-tools/reach/internal/netlab"
)

// runIn runs discovery from inside h.
func runIn(t *testing.T, h *netlab.Host, addrs []netip.Addr, opt discover.Options) (map[netip.Addr]discover.Result, time.Duration) {
	t.Helper()
	opt.RunIn = h.Do
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res, err := discover.Run(ctx, addrs, opt)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]discover.Result{}
	for _, r := range res {
		out[r.Addr] = r
	}
	return out, time.Since(start)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func block(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

// A /24 LAN with the scanner and three live hosts, one of which drops
// everything but ARP: the live ones are up by ARP (or by the kernel's ARP,
// unprivileged), the scanner is local, and the 252 others are down, in well
// under the kernel's 3 s.
func TestLAN(t *testing.T) {
	lab := netlab.New(t)
	scanner, a, b, fw := lab.Host("scanner"), lab.Host("a"), lab.Host("b"), lab.Host("fw")
	addrs := lab.LAN(scanner, a, b, fw)
	fw.Iptables(t, "-P", "INPUT", "DROP")
	b.Listen(t, "tcp", netip.AddrPortFrom(addrs[2], 80).String())
	for _, unpriv := range []bool{false, true} {
		fds := openFDs(t)
		got, took := runIn(t, scanner, block(netip.PrefixFrom(addrs[0], 24)), discover.Options{Unprivileged: unpriv})
		if n := openFDs(t); n > fds {
			t.Errorf("unprivileged %v: %d file descriptors open after the run, %d before", unpriv, n, fds)
		}
		bcast := netip.MustParseAddr(addrs[0].String()[:len(addrs[0].String())-1] + "255")
		want := map[netip.Addr]string{addrs[0]: "up local", addrs[1]: "up arp", addrs[2]: "up arp", addrs[3]: "up arp",
			bcast: "unknown "} // nothing to ask: the port scan says no-route
		if unpriv {
			// The TCP ping may come back first from the hosts that answer it.
			want[addrs[1]], want[addrs[2]] = "up", "up"
		}
		down := 0
		for addr, r := range got {
			w, ok := want[addr]
			if !ok {
				if r.State != discover.Down || r.By != discover.ARP || r.Reason != discover.ReasonNoResponse {
					t.Errorf("unprivileged %v: %v: %v by %s (%s): %s; want down by arp", unpriv, addr, r.State, r.By, r.Reason, r.Evidence)
				}
				down++
				continue
			}
			if g := r.State.String() + " " + string(r.By); w != r.State.String() && g != w {
				t.Errorf("unprivileged %v: %v: %s (%s): %s; want %s", unpriv, addr, g, r.Reason, r.Evidence, w)
			}
		}
		t.Logf("unprivileged %v: %d down in %v; e.g. %+v", unpriv, down, took, got[addrs[3]])
		if down != 251 {
			t.Errorf("%d down, want 251", down)
		}
	}
}

// IPv6 on a link: the server is up by a neighbour advertisement (by the
// kernel's, unprivileged), an unowned address down.
func TestLinkIPv6(t *testing.T) {
	p := netlab.New(t).PairV6()
	dead := p.Lab.Unowned(t, p.ServerAddr)
	for _, unpriv := range []bool{false, true} {
		got, took := runIn(t, p.Client, []netip.Addr{p.ServerAddr, dead, p.ClientAddr}, discover.Options{Unprivileged: unpriv})
		if r := got[p.ServerAddr]; r.State != discover.Up || (!unpriv && (r.By != discover.ND || r.Reason != discover.ReasonNDResponse || r.MAC == nil)) {
			t.Errorf("unprivileged %v: server: %+v", unpriv, r)
		}
		if r := got[dead]; r.State != discover.Down || r.By != discover.ND || r.Reason != discover.ReasonNoResponse {
			t.Errorf("unprivileged %v: unowned: %+v", unpriv, r)
		}
		if r := got[p.ClientAddr]; r.State != discover.Up || r.By != discover.Local {
			t.Errorf("unprivileged %v: own address: %+v", unpriv, r)
		}
		t.Logf("unprivileged %v: %v: %+v", unpriv, took, got[dead])
	}
}

// Through a router: the server is up by echo (privileged) or a TCP ping's
// reset; an address nobody owns behind the router is unknown, never down:
// a router's silence proves nothing. So is a host that drops the pings.
func TestRouted(t *testing.T) {
	r := netlab.New(t).Routed()
	dead := r.Lab.Unowned(t, r.ServerAddr)
	for _, unpriv := range []bool{false, true} {
		got, took := runIn(t, r.Client, []netip.Addr{r.ServerAddr, dead}, discover.Options{Unprivileged: unpriv})
		if s := got[r.ServerAddr]; s.State.String()+" "+string(s.By)+" "+s.Reason != "up tcp reset" &&
			(unpriv || s.State.String()+" "+string(s.By)+" "+s.Reason != "up echo echo-reply") {
			t.Errorf("unprivileged %v: server: %+v, want up by a reset (or echo-reply)", unpriv, s)
		}
		if d := got[dead]; d.State != discover.Unknown {
			t.Errorf("unprivileged %v: unowned behind the router: %+v, want unknown", unpriv, d)
		}
		t.Logf("unprivileged %v: %v: %+v", unpriv, took, got[dead])
	}
	// Only ICMP answers: up by echo, or (unprivileged, no ping socket
	// here) unknown.
	r.Server.Iptables(t, "-A", "INPUT", "-p", "tcp", "-j", "DROP")
	for _, unpriv := range []bool{false, true} {
		got, _ := runIn(t, r.Client, []netip.Addr{r.ServerAddr}, discover.Options{Unprivileged: unpriv})
		s := got[r.ServerAddr]
		if !unpriv && (s.State != discover.Up || s.By != discover.Echo || s.Reason != discover.ReasonEchoReply) ||
			unpriv && s.State != discover.Unknown {
			t.Errorf("unprivileged %v: a server dropping TCP: %+v", unpriv, s)
		}
	}
	// Where ping_group_range lets everyone open a ping socket, an
	// unprivileged discovery pings too.
	r.Client.Sysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	got, _ := runIn(t, r.Client, []netip.Addr{r.ServerAddr}, discover.Options{Unprivileged: true})
	if s := got[r.ServerAddr]; s.State != discover.Up || s.By != discover.Echo || s.Reason != discover.ReasonEchoReply {
		t.Errorf("unprivileged with ping sockets: a server dropping TCP: %+v", s)
	}
	r.Server.Iptables(t, "-P", "INPUT", "DROP")
	got, _ = runIn(t, r.Client, []netip.Addr{r.ServerAddr}, discover.Options{})
	if s := got[r.ServerAddr]; s.State != discover.Unknown {
		t.Errorf("a server dropping everything: %+v, want unknown", s)
	}
}
