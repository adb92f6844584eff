package scan

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

func TestTopPorts(t *testing.T) {
	all, err := parseTopPorts(topPortsText)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 200 || TopPortsLen() != len(all) {
		t.Fatalf("top list has %d ports", len(all))
	}
	if got := TopPorts(3); !slices.Equal(got, []uint16{80, 443, 22}) {
		t.Fatalf("TopPorts(3) = %v", got)
	}
	if got := TopPorts(1 << 20); len(got) != len(all) {
		t.Fatalf("TopPorts(huge) = %d ports, want the whole list %d", len(got), len(all))
	}
	for _, bad := range []string{"80 http\n80 again\n", "x y\n", "0 zero\n", "70000 big\n"} {
		if _, err := parseTopPorts(bad); err == nil {
			t.Errorf("parseTopPorts(%q) accepted", bad)
		}
	}
}

func TestParseServices(t *testing.T) {
	s, err := ParseServices(strings.NewReader("# comment\nssh\t\t22/tcp\t# SSH\ndomain 53/udp\ndomain 53/tcp\nhttp 80/tcp www\nwww-alt 80/tcp\nbad x/tcp\nshort\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Services{22: "ssh", 53: "domain", 80: "http"}
	if len(s) != len(want) {
		t.Fatalf("services = %v, want %v", s, want)
	}
	for p, n := range want {
		if s.Name(p) != n {
			t.Errorf("Name(%d) = %q, want %q", p, s.Name(p), n)
		}
	}
	if s.Name(9) != "unknown" {
		t.Errorf("Name(9) = %q, want unknown", s.Name(9))
	}
}

func TestExpand(t *testing.T) {
	parse := func(s string) []endpoint.Hosts {
		h, err := endpoint.ParseHostList(s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	got, err := Expand(context.Background(), parse("198.18.0.0/30 198.18.0.2 ::1"), parse("198.18.0.1"), probe.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, tg := range got {
		addrs = append(addrs, tg.Addr.String())
	}
	if want := []string{"198.18.0.0", "198.18.0.2", "198.18.0.3", "::1"}; !slices.Equal(addrs, want) {
		t.Fatalf("Expand = %v, want %v", addrs, want)
	}
	if _, err := Expand(context.Background(), parse("198.18.0.0/8"), nil, probe.Options{}); !errors.Is(err, ErrTooBig) {
		t.Fatalf("a /8: %v, want ErrTooBig", err)
	}
	// A zone naming no interface is refused, not scanned as "filtered"; one
	// naming an interface, by name or index, is kept.
	if _, err := Expand(context.Background(), parse("fe80::1%no-such-if0"), nil, probe.Options{}); !errors.Is(err, ErrZone) {
		t.Fatalf("unknown zone: %v, want ErrZone", err)
	}
	// A link-local address without a zone cannot be connected to (EINVAL
	// at once): refused, not reported as a host that answers nothing.
	for _, in := range []string{"fe80::1", "fe80::/120", "fe80::1-fe80::3"} {
		if _, err := Expand(context.Background(), parse(in), nil, probe.Options{}); !errors.Is(err, ErrZone) || !strings.Contains(err.Error(), "link-local") {
			t.Errorf("%s: %v, want ErrZone saying link-local", in, err)
		}
	}
	if lo, err := net.InterfaceByName("lo"); err == nil {
		for _, zone := range []string{"lo", strconv.Itoa(lo.Index)} {
			got, err := Expand(context.Background(), parse("fe80::1%"+zone), nil, probe.Options{})
			if err != nil || len(got) != 1 || got[0].Addr.Zone() != zone {
				t.Errorf("zone %q: %v, %v", zone, got, err)
			}
		}
	}
	// A name that cannot resolve gives the probe's typed DNS error. The
	// resolver fails every query itself, so nothing leaves this host.
	offline := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
	_, err = Expand(context.Background(), parse("db.example"), nil, probe.Options{Resolver: offline})
	if !errors.Is(err, probe.DNS) {
		t.Fatalf("unresolvable name: %v, want a probe.DNS error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "db.example did not resolve") || !strings.Contains(msg, "reach check db.example:PORT") {
		t.Errorf("unresolvable name: %q, want what failed and what to do", msg)
	}
}
