package sys

import (
	"slices"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
)

// A veth pair between two lab hosts: each end names the other's namespace
// by the id its own namespace gives it, and a namespace with no link to it
// has none.
func TestLinksAndNetnsIDs(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b, alone := lab.Host("a"), lab.Host("b"), lab.Host("alone")
	lab.Link(a, b)
	open := func(h *netlab.Host) *Netns {
		ns, err := OpenNetns("/run/netns/" + h.Name())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		return ns
	}
	nsB, nsAlone := open(b), open(alone)
	var links []Link
	var ids []int
	err := a.Do(func() (err error) {
		if links, err = Links(t.Context()); err != nil {
			return err
		}
		ids, err = NetnsIDs(t.Context(), []*Netns{nsB, nsAlone})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(links, func(l Link) bool { return l.Kind == "veth" })
	if i < 0 {
		t.Fatalf("no veth in %+v", links)
	}
	veth := links[i]
	if veth.PeerNetnsID < 0 || veth.PeerIndex == 0 {
		t.Errorf("veth %+v names no peer", veth)
	}
	if ids[0] != veth.PeerNetnsID {
		t.Errorf("b's id is %d, the veth's peer is in %d", ids[0], veth.PeerNetnsID)
	}
	if ids[1] != -1 {
		t.Errorf("a namespace with no link to a has id %d, want -1", ids[1])
	}
	if j := slices.IndexFunc(links, func(l Link) bool { return l.Name == "lo" }); j < 0 || links[j].PeerNetnsID != -1 {
		t.Errorf("lo: %+v", links)
	}
}

// The main table of a lab host: its link's prefix on its veth, and a route
// added through it.
func TestRoutes(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	a, b := lab.Host("a"), lab.Host("b")
	addrA, addrB := lab.Link(a, b)
	a.AddRoute(t, "198.18.200.0/24", "via", addrB.String())
	var routes []Route
	var links []Link
	err := a.Do(func() (err error) {
		if links, err = Links(t.Context()); err != nil {
			return err
		}
		routes, err = Routes(t.Context())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	veth := links[slices.IndexFunc(links, func(l Link) bool { return l.Kind == "veth" })]
	var onLink, via bool
	for _, r := range routes {
		if r.Table != mainTable || r.IfIndex == 0 {
			t.Errorf("route %+v: not of the main table, or no device", r)
		}
		onLink = onLink || r.Prefix.Contains(addrA) && r.IfIndex == veth.Index && !r.Gateway.IsValid()
		via = via || r.Prefix.String() == "198.18.200.0/24" && r.Gateway == addrB && r.IfIndex == veth.Index
	}
	if !onLink || !via {
		t.Errorf("routes %+v: want %v's prefix on %s and 198.18.200.0/24 via %v", routes, addrA, veth.Name, addrB)
	}
}
