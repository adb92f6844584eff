package scan_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/scan"
)

// A client joined to a server by two links, A and B. The scan targets the
// server's address on A; the routes go by A, and by B only for a socket
// bound to B's interface (a route of a higher metric). The server resets
// one port's connections unless they come from the client's address on B,
// and another's when they arrive on A: the source, and the interface, the
// scan binds decide what it finds.
func TestSourceAndInterface(t *testing.T) {
	netlab.Require(t)
	pair := netlab.New(t).Pair() // link A
	c, s, clientA, serverA := pair.Client, pair.Server, pair.ClientAddr, pair.ServerAddr
	clientB, serverB := pair.Lab.Link(c, s)
	ifA, ifB := c.InterfaceOf(t, clientA), c.InterfaceOf(t, clientB)
	c.AddRoute(t, netip.PrefixFrom(serverA, 24).Masked().String(), "via", serverB.String(), "dev", ifB, "metric", "500")

	bySource, byInterface := listenOn(t, s, serverA), listenOn(t, s, serverA)
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(bySource)), "!", "-s", clientB.String(), "-j", "REJECT", "--reject-with", "tcp-reset")
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(byInterface)), "-i", s.InterfaceOf(t, serverA), "-j", "REJECT", "--reject-with", "tcp-reset")
	ports := []uint16{bySource, byInterface}

	for _, tc := range []struct {
		name     string
		source   netip.Addr
		iface    string
		wantOpen []uint16
	}{
		{name: "as routed", wantOpen: nil},
		{name: "from B's address", source: clientB, wantOpen: []uint16{bySource}},
		{name: "from A's address", source: clientA, wantOpen: nil},
		{name: "by B", iface: ifB, wantOpen: []uint16{bySource, byInterface}},
		{name: "by A", iface: ifA, wantOpen: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := scanIn(t, c, target(serverA), scan.Options{Ports: ports, Source: tc.source, Interface: tc.iface, Timeout: 2 * time.Second})
			got := openSet(rep.Hosts[0])
			slices.Sort(got)
			slices.Sort(tc.wantOpen)
			if !slices.Equal(got, tc.wantOpen) {
				t.Fatalf("open %v, want %v; ports %v", got, tc.wantOpen, byState(rep.Hosts[0]))
			}
			if rep.Counts.Open+rep.Counts.Closed != len(ports) {
				t.Errorf("counts %+v: every port must answer (open or reset)", rep.Counts)
			}
		})
	}
}

// listenOn accepts and closes connections on a in h, and returns the port.
func listenOn(t *testing.T, h *netlab.Host, a netip.Addr) uint16 {
	t.Helper()
	return testnet.ServeOn(t, h.Listen(t, "tcp", netip.AddrPortFrom(a, 0).String()), testnet.HangUp).Port()
}

// A source or interface the host does not have fails the scan before any
// probe, saying what there is instead; so does a target of the other family.
func TestSourceAndInterfaceErrors(t *testing.T) {
	netlab.Require(t)
	pair := netlab.New(t).Pair()
	c, clientA, serverA := pair.Client, pair.ClientAddr, pair.ServerAddr
	for _, tc := range []struct {
		name    string
		targets []scan.Target
		opt     scan.Options
		is      error
		msg     string
	}{
		{"source not here", target(serverA), scan.Options{Source: netip.MustParseAddr("198.18.0.9")}, syscall.EADDRNOTAVAIL,
			"198.18.0.9 is not an address of this host: bind: cannot assign requested address; use one of 127.0.0.1 (lo), " + clientA.String()},
		{"no such interface", target(serverA), scan.Options{Interface: "eth7"}, syscall.ENODEV,
			"no interface eth7: setsockopt SO_BINDTODEVICE: no such device; interfaces here: lo, " + c.InterfaceOf(t, clientA)},
		{"other family", []scan.Target{{Addr: serverA}, {Addr: netip.MustParseAddr("fd00::2")}}, scan.Options{Source: clientA}, probe.ErrSourceFamily,
			"source " + clientA.String() + " is IPv4 and cannot reach fd00::2, which is IPv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Ports = []uint16{80}
			tc.opt.RunIn = c.Do
			rep, err := scan.Scan(context.Background(), tc.targets, tc.opt)
			if rep != nil || !errors.Is(err, tc.is) || err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("report %v, err\n%v\nwant errors.Is %v and\n%s", rep, err, tc.is, tc.msg)
			}
		})
	}
}
