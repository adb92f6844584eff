package sys_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
)

// TestProbeHop traces cli -> rtr -> srv: hop 1 is the router (time
// exceeded), hop 2 the server (port unreachable); with the server dropping
// everything, hop 2 is silent.
func TestProbeHop(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	r := netlab.New(t).Routed()
	cli, srv, srvAddr, rtrA := r.Client, r.Server, r.ServerAddr, r.RouterClientSide
	dst := netip.AddrPortFrom(srvAddr, 33434)

	hop := func(ttl int) sys.Hop {
		var h sys.Hop
		if err := cli.Do(func() (err error) {
			h, err = sys.ProbeHop(context.Background(), dst, ttl, 2*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := hop(1); h.From != rtrA || h.What != "time exceeded" || h.Reached || h.RTT <= 0 {
		t.Errorf("hop 1: %+v, want time exceeded from %v", h, rtrA)
	}
	if h := hop(2); h.From != srvAddr || !h.Reached || h.What != "port unreachable" {
		t.Errorf("hop 2: %+v, want port unreachable from %v", h, srvAddr)
	}
	srv.Iptables(t, "-P", "INPUT", "DROP")
	var h sys.Hop
	cli.Do(func() (err error) {
		h, err = sys.ProbeHop(context.Background(), dst, 2, 300*time.Millisecond)
		return err
	})
	if h.From.IsValid() || h.Reached {
		t.Errorf("hop 2 behind DROP: %+v, want silence", h)
	}
	// No route at all: a local error, at once.
	cli.Do(func() (err error) {
		h, err = sys.ProbeHop(context.Background(), netip.MustParseAddrPort("198.19.200.1:33434"), 1, time.Second)
		return err
	})
	if h.What == "" || h.Errno == 0 {
		t.Errorf("no route: %+v, want a local error", h)
	}
}

// On IPv6 the destination's port-unreachable comes back through IPV6_RECVERR.
func TestProbeHopIPv6(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	p := netlab.New(t).PairV6()
	a, bAddr := p.Client, p.ServerAddr
	var h sys.Hop
	if err := a.Do(func() (err error) {
		h, err = sys.ProbeHop(context.Background(), netip.AddrPortFrom(bAddr, 33434), 1, 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if h.From != bAddr || !h.Reached || h.What != "port unreachable" {
		t.Errorf("hop 1: %+v, want port unreachable from %v", h, bAddr)
	}
}
