package scan_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/scan"
)

// With discovery, a LAN /24 is judged by ARP: the live hosts are up with
// reason arp-response (one that drops everything but ARP too, its ports
// filtered), the 252 absent ones host-unreachable with reason no-response and
// no ports, the scanner itself local; and the open ports are exactly the
// ones listening. --hosts-only gives the same hosts and no ports.
func TestDiscoveryOnLAN(t *testing.T) {
	lab := netlab.New(t)
	scanner, a, fw := lab.Host("scanner"), lab.Host("a"), lab.Host("fw")
	addrs := lab.LAN(scanner, a, fw)
	open := portOf(a.Listen(t, "tcp", net.JoinHostPort(addrs[1].String(), "0")))
	fw.Iptables(t, "-P", "INPUT", "DROP")
	var targets []scan.Target
	for p, x := netip.PrefixFrom(addrs[0], 24).Masked(), netip.PrefixFrom(addrs[0], 24).Masked().Addr(); p.Contains(x); x = x.Next() {
		targets = append(targets, scan.Target{Addr: x})
	}
	bcast := targets[255].Addr
	for _, hostsOnly := range []bool{false, true} {
		var streamed int
		rep := scanIn(t, scanner, targets, scan.Options{Ports: []uint16{open, 1, 2}, Discover: true, HostsOnly: hostsOnly,
			MaxRetries: -1, Timeout: 300e6, OnHost: func(scan.Host) { streamed++ }})
		if rep.Discovery <= 0 || rep.HostsOnly != hostsOnly {
			t.Errorf("hostsOnly %v: Discovery %v, HostsOnly %v", hostsOnly, rep.Discovery, rep.HostsOnly)
		}
		down := 0
		for _, h := range rep.Hosts {
			got := string(h.State) + " " + h.Reason + " " + string(h.JudgedBy)
			switch h.Addr {
			case addrs[0]:
				if got != "up localhost-response local" {
					t.Errorf("hostsOnly %v: scanner %s", hostsOnly, got)
				}
			case addrs[1], addrs[2]:
				if got != "up arp-response arp" || h.MAC == "" {
					t.Errorf("hostsOnly %v: %v: %s mac %q (%s)", hostsOnly, h.Addr, got, h.MAC, h.Evidence)
				}
				want := scan.Counts{Open: 1, Closed: 2}
				if h.Addr == addrs[2] {
					want = scan.Counts{Filtered: 3}
				}
				if hostsOnly {
					want = scan.Counts{}
				}
				if h.Counts != want {
					t.Errorf("hostsOnly %v: %v: counts %+v, want %+v", hostsOnly, h.Addr, h.Counts, want)
				}
			case bcast:
				if h.State != scan.HostNoRoute {
					t.Errorf("hostsOnly %v: broadcast %v: %s", hostsOnly, h.Addr, got)
				}
			default:
				if got != "host-unreachable no-response arp" || len(h.Ports) != 0 {
					t.Errorf("hostsOnly %v: %v: %s, %d ports (%s)", hostsOnly, h.Addr, got, len(h.Ports), h.Evidence)
				}
				down++
			}
		}
		if down != 252 || len(rep.Hosts) != 256 {
			t.Errorf("hostsOnly %v: %d hosts down of %d, want 252 of 256", hostsOnly, down, len(rep.Hosts))
		}
		if !hostsOnly && streamed != 253 { // the 252 and the broadcast address
			t.Errorf("OnHost called %d times, want 253", streamed)
		}
		t.Logf("hostsOnly %v: %v (discovery %v), %d probes", hostsOnly, rep.Elapsed, rep.Discovery, rep.Probes)
	}
}

// Through a router, silence never makes a host down: an address nobody
// owns is port-scanned, and since other hosts behind the router answered
// discovery, its ports wait Timeout, not the 4 s DiscoveryWait: no-answer,
// judged by ports, with discovery's evidence. The live server is up by a
// ping and its open port found.
func TestDiscoveryThroughRouter(t *testing.T) {
	r := netlab.New(t).Routed()
	open := portOf(r.Server.Listen(t, "tcp", net.JoinHostPort(r.ServerAddr.String(), "0")))
	dead := r.Lab.Unowned(t, r.ServerAddr)
	rep := scanIn(t, r.Client, []scan.Target{{Addr: r.ServerAddr}, {Addr: dead}}, scan.Options{Ports: []uint16{open, 1},
		Discover: true, MaxRetries: -1, Timeout: 500e6})
	for _, h := range rep.Hosts {
		got := string(h.State) + " " + h.Reason + " " + string(h.JudgedBy)
		switch h.Addr {
		case r.ServerAddr:
			if (got != "up echo-reply echo" && got != "up reset tcp") || h.Counts != (scan.Counts{Open: 1, Closed: 1}) {
				t.Errorf("server: %s %+v (%s)", got, h.Counts, h.Evidence)
			}
		case dead:
			if got != "no-answer no-response ports" || h.Counts != (scan.Counts{Filtered: 2}) ||
				!strings.Contains(h.Evidence, "discovery: no reply to 3 ICMP echo requests") {
				t.Errorf("unowned: %s %+v (%s)", got, h.Counts, h.Evidence)
			}
		}
	}
	if rep.Elapsed > 2500*time.Millisecond {
		t.Errorf("took %v: the unowned address waited DiscoveryWait", rep.Elapsed)
	}
	t.Logf("%v (discovery %v)", rep.Elapsed, rep.Discovery)
}
