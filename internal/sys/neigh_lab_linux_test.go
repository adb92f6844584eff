package sys_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
)

// Neighbours reads both families' tables of the calling thread's namespace,
// with each entry's state.
func TestNeighbours(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	a := netlab.New(t).Pair().Client // its link is veth0
	failed4, perm4, failed6 := netip.MustParseAddr("198.18.0.9"), netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("fd00::9")
	a.Run(t, "ip", "neigh", "replace", failed4.String(), "dev", "veth0", "nud", "failed")
	a.Run(t, "ip", "neigh", "replace", perm4.String(), "lladdr", "02:00:00:00:00:0a", "dev", "veth0", "nud", "permanent")
	a.Run(t, "ip", "-6", "neigh", "replace", failed6.String(), "dev", "veth0", "nud", "failed")
	got := map[netip.Addr]uint16{}
	if err := a.Do(func() error {
		return sys.Neighbours(context.Background(), func(addr netip.Addr, state uint16) { got[addr] = state })
	}); err != nil {
		t.Fatal(err)
	}
	const nudPermanent = 0x80
	for addr, want := range map[netip.Addr]uint16{failed4: sys.NeighFailed, perm4: nudPermanent, failed6: sys.NeighFailed} {
		if st, ok := got[addr]; !ok || st != want {
			t.Errorf("%v: state %#x (listed %v), want %#x; table %v", addr, st, ok, want, got)
		}
	}
}
