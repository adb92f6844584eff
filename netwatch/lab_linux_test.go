package netwatch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/netwatch"
)

// watch starts a Watch inside h and returns its bursts. It waits until
// the watch sees a first change the test makes, so later changes are not
// made before the kernel's sockets exist.
func watch(t *testing.T, h *netlab.Host, opt netwatch.Options) <-chan netwatch.Burst {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bursts := make(chan netwatch.Burst, 64)
	done := make(chan error, 1)
	opt.RunIn = h.Do
	go func() {
		done <- netwatch.Watch(ctx, opt, func(b netwatch.Burst) { bursts <- b })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Watch did not return 5 s after its context ended")
		}
	})
	// Bounded: the sockets exist within a few milliseconds of the start.
	// nw-ready is a veth (this kernel may lack dummy devices): up, with a
	// peer the loop toggles, and up again at the end.
	h.Run(t, "ip", "link", "add", "nw-ready", "type", "veth", "peer", "name", "nw-peer")
	h.Run(t, "ip", "link", "set", "nw-ready", "up")
	for i := range 50 {
		h.Run(t, "ip", "link", "set", "nw-peer", map[bool]string{true: "up", false: "down"}[i%2 == 0])
		select {
		case <-bursts:
			h.Run(t, "ip", "link", "set", "nw-peer", "up")
			drain(bursts, 300*time.Millisecond)
			return bursts
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("Watch reported no change within 5 s of the test's first ones")
	return nil
}

// drain discards bursts until none came for quiet.
func drain(c <-chan netwatch.Burst, quiet time.Duration) {
	for {
		select {
		case <-c:
		case <-time.After(quiet):
			return
		}
	}
}

func next(t *testing.T, c <-chan netwatch.Burst) netwatch.Burst {
	t.Helper()
	select {
	case b := <-c:
		return b
	case <-time.After(3 * time.Second):
		t.Fatal("no burst within 3 s of the change")
		return netwatch.Burst{}
	}
}

func TestWatchSeesEachKind(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	p := lab.Pair()
	h := p.Client
	bursts := watch(t, h, netwatch.Options{})
	dev := h.InterfaceOf(t, p.ClientAddr)
	cases := []struct {
		name   string
		change []string
		kind   string
		detail string
	}{
		{"route added", []string{"ip", "route", "add", "198.19.7.0/24", "dev", dev},
			netwatch.KindRoute, "route 198.19.7.0/24 dev " + dev + " added"},
		{"route removed", []string{"ip", "route", "del", "198.19.7.0/24", "dev", dev},
			netwatch.KindRoute, "route 198.19.7.0/24 dev " + dev + " removed"},
		{"address added", []string{"ip", "addr", "add", "198.19.8.1/32", "dev", "nw-ready"},
			netwatch.KindAddress, "address 198.19.8.1/32 dev nw-ready added"},
		{"link down", []string{"ip", "link", "set", dev, "down"},
			netwatch.KindLink, "link " + dev + " down"},
		{"firewall", []string{"nft", "add table inet nwtest"},
			netwatch.KindFirewall, "nftables rule set changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.kind == netwatch.KindFirewall {
				h.Nft(t, tc.change[1])
			} else {
				h.Run(t, tc.change...)
			}
			// Other changes may come too (IPv6 link-local addresses appear
			// a moment after a link is up): look through 3 s of bursts.
			var seen []netwatch.Change
			deadline := time.After(3 * time.Second)
			for {
				select {
				case b := <-bursts:
					for _, c := range b.Changes {
						if c.Kind == tc.kind && strings.HasPrefix(c.Detail, tc.detail) {
							return
						}
					}
					seen = append(seen, b.Changes...)
					continue
				case <-deadline:
				}
				break
			}
			t.Errorf("no %s change starting %q within 3 s; saw %v", tc.kind, tc.detail, seen)
		})
	}
}

func TestWatchCoalescesABurst(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	h := lab.Host("a")
	// No IPv6: its link-local addresses arrive late and would join the burst.
	h.Sysctl(t, "net.ipv6.conf.all.disable_ipv6", "1")
	h.Sysctl(t, "net.ipv6.conf.default.disable_ipv6", "1")
	bursts := watch(t, h, netwatch.Options{Quiet: 100 * time.Millisecond})
	// Ten changes in one go, as a deployment script makes them.
	var batch strings.Builder
	for i := range 10 {
		batch.WriteString("route add 198.19.9." + string(rune('0'+i)) + "/32 dev nw-ready\n")
	}
	h.Run(t, "sh", "-c", "printf '"+batch.String()+"' | ip -batch -")
	b := next(t, bursts)
	if b.Count != 10 {
		t.Errorf("burst has %d changes, want the 10 routes in one burst: %v", b.Count, b.Changes)
	}
	select {
	case extra := <-bursts:
		t.Errorf("a second burst for the same batch: %v", extra)
	case <-time.After(300 * time.Millisecond):
	}
	if !b.Affects(mustAddr(t, "198.19.9.3")) || b.Affects(mustAddr(t, "198.18.0.1")) {
		t.Errorf("Affects: a /32 route burst must affect only its addresses; %v", b.Changes)
	}
}
