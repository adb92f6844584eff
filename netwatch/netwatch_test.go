package netwatch_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/reach-tools/reach/netwatch"
)

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAffects(t *testing.T) {
	route := func(p string) netwatch.Change {
		return netwatch.Change{Kind: netwatch.KindRoute, Prefix: netip.MustParsePrefix(p)}
	}
	tests := []struct {
		name string
		c    netwatch.Change
		addr string
		want bool
	}{
		{"route covers", route("198.18.0.0/24"), "198.18.0.9", true},
		{"route elsewhere", route("198.18.0.0/24"), "198.18.1.9", false},
		{"default route v4", route("0.0.0.0/0"), "198.18.1.9", true},
		{"default v4 not v6", route("0.0.0.0/0"), "fd00::1", false},
		{"mapped address", route("198.18.0.0/24"), "::ffff:198.18.0.9", true},
		{"address: its family", netwatch.Change{Kind: netwatch.KindAddress,
			Prefix: netip.MustParsePrefix("198.19.0.1/32")}, "198.18.1.9", true},
		{"address: not the other family", netwatch.Change{Kind: netwatch.KindAddress,
			Prefix: netip.MustParsePrefix("198.19.0.1/32")}, "fd00::1", false},
		{"link-local address: not global ones", netwatch.Change{Kind: netwatch.KindAddress,
			Prefix: netip.MustParsePrefix("fe80::1/64")}, "fd00::1", false},
		{"link-local address: link-local ones", netwatch.Change{Kind: netwatch.KindAddress,
			Prefix: netip.MustParsePrefix("fe80::1/64")}, "fe80::2", true},
		{"link anything", netwatch.Change{Kind: netwatch.KindLink}, "fd00::1", true},
		{"firewall anything", netwatch.Change{Kind: netwatch.KindFirewall}, "127.0.0.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Affects(mustAddr(t, tt.addr)); got != tt.want {
				t.Errorf("Affects(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestBurst(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 42, 3, 0, time.UTC)
	r := netwatch.Change{Kind: netwatch.KindRoute, Prefix: netip.MustParsePrefix("198.18.0.0/24"),
		Detail: "route 198.18.0.0/24 dev r0 removed"}
	b := netwatch.Burst{First: at, Changes: []netwatch.Change{r}, Count: 1}
	if got, want := b.String(), "route 198.18.0.0/24 dev r0 removed at 10:42:03"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	b.Count = 10
	if got := b.String(); got != "route 198.18.0.0/24 dev r0 removed at 10:42:03 (and 9 more changes)" {
		t.Errorf("String = %q", got)
	}
	// Changes it did not keep may affect anything.
	if !b.Affects(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a burst with changes left out must affect every address")
	}
	b.Count = 1
	if b.Affects(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a route to 198.18.0.0/24 must not affect 127.0.0.1")
	}
	if !b.Affects(netip.Addr{}) {
		t.Error("an endpoint never resolved must be re-probed")
	}
}
