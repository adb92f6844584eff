package discover_test

import (
	"context"
	"net/netip"
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
		got, took := runIn(t, scanner, block(netip.PrefixFrom(addrs[0], 24)), discover.Options{Unprivileged: unpriv})
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
