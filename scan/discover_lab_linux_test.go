package scan_test

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/scan"
)

// lateBy is how late the late host answers: every frame it sends (ARP and
// ND answers included) reaches the LAN this much later.
const lateBy = 300 * time.Millisecond

// discoverLab is issue 18's four kinds of host on one LAN with the
// scanner: a dead address (no host holds it), a live host with every port
// closed, a live host whose firewall drops everything but ARP/ND, and a host
// that answers lateBy late, with two open ports.
type discoverLab struct {
	v6                             bool
	scanner                        *netlab.Host
	dead, closed, firewalled, late netip.Addr
	open, ports                    []uint16 // the late host's open ports; all scanned ports
}

// firewallRules drop everything but ARP (which iptables never sees) or, on
// IPv6, neighbour solicitations and advertisements, both ways.
const (
	dropAllButARP = `*filter
:INPUT DROP [0:0]
:OUTPUT DROP [0:0]
COMMIT
`
	dropAllButND = `*filter
:INPUT DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT
COMMIT
`
)

func newDiscoverLab(t *testing.T, v6 bool) *discoverLab {
	t.Helper()
	lab := netlab.New(t)
	sc, cl, fw, lt := lab.Host("scanner"), lab.Host("closed"), lab.Host("firewalled"), lab.Host("late")
	addrs := lab.LANWith(netlab.LANOptions{IPv6: v6, Delay: map[*netlab.Host]time.Duration{lt: lateBy}}, sc, cl, fw, lt)
	d := &discoverLab{v6: v6, scanner: sc, dead: lab.Unowned(t, addrs[0]), closed: addrs[1], firewalled: addrs[2], late: addrs[3]}
	if v6 {
		fw.ApplyRules(t, netlab.IP6Tables, dropAllButND)
	} else {
		fw.ApplyRules(t, netlab.IPTables, dropAllButARP)
	}
	for range 2 {
		d.open = append(d.open, portOf(lt.Listen(t, "tcp", netip.AddrPortFrom(d.late, 0).String())))
	}
	slices.Sort(d.open)
	d.ports = append(slices.Clone(d.open), closedPort(t, lt, d.late.String()), closedPort(t, lt, d.late.String()))
	return d
}

func (d *discoverLab) targets() []scan.Target {
	return []scan.Target{{Addr: d.dead}, {Addr: d.closed}, {Addr: d.firewalled}, {Addr: d.late}}
}

// judged is how one host was judged: its state, reason and method, and
// its ports as port -> state/reason (nil: none decided).
type judged struct {
	State  scan.HostState
	Reason string
	By     scan.Method
	Ports  map[uint16]string
}

func (j judged) String() string {
	return fmt.Sprintf("%s/%s by %s, ports %v", j.State, j.Reason, j.By, j.Ports)
}

func judgedOf(h scan.Host) judged {
	j := judged{State: h.State, Reason: h.Reason, By: h.JudgedBy}
	if len(h.Ports) > 0 {
		j.Ports = byState(h)
	}
	return j
}

// every gives each of ports the same state/reason.
func every(ports []uint16, state string) map[uint16]string {
	m := map[uint16]string{}
	for _, p := range ports {
		m[p] = state
	}
	return m
}

// want is the exact verdict on every host of the lab. discovery: with host
// discovery (as root on the LAN: ARP or ND); hostsOnly: and no port scan.
// Without discovery the verdicts are those of the port scan alone, as
// before issue 18: the dead host host-unreachable once the kernel gives up
// on ARP/ND, the firewalled one no-answer with every port filtered.
func (d *discoverLab) want(discovery, hostsOnly bool) map[netip.Addr]judged {
	lateOpen := every(d.ports, "closed/conn-refused")
	for _, p := range d.open {
		lateOpen[p] = "open/syn-ack"
	}
	if !discovery {
		return map[netip.Addr]judged{
			d.dead:       {scan.HostUnreachable, scan.ReasonHostUnreach, scan.ByPorts, nil},
			d.closed:     {scan.HostUp, scan.ReasonConnRefused, scan.ByPorts, every(d.ports, "closed/conn-refused")},
			d.firewalled: {scan.HostNoAnswer, scan.ReasonNoResponse, scan.ByPorts, every(d.ports, "filtered/no-response")},
			d.late:       {scan.HostUp, scan.ReasonSynAck, scan.ByPorts, lateOpen},
		}
	}
	by, up := scan.ByARP, scan.ReasonARPResponse
	if d.v6 {
		by, up = scan.ByND, scan.ReasonNDResponse
	}
	w := map[netip.Addr]judged{
		d.dead:       {scan.HostUnreachable, scan.ReasonNoResponse, by, nil},
		d.closed:     {scan.HostUp, up, by, every(d.ports, "closed/conn-refused")},
		d.firewalled: {scan.HostUp, up, by, every(d.ports, "filtered/no-response")},
		d.late:       {scan.HostUp, up, by, lateOpen},
	}
	if hostsOnly {
		for a, j := range w {
			j.Ports = nil
			w[a] = j
		}
	}
	return w
}

// check compares a report's hosts with want, naming every host that differs.
func (d *discoverLab) check(t *testing.T, rep *scan.Report, want map[netip.Addr]judged) {
	t.Helper()
	got := map[netip.Addr]judged{}
	for _, h := range rep.Hosts {
		got[h.Addr] = judgedOf(h)
		if h.Addr == d.late && h.State == scan.HostUp && h.SRTT < lateBy {
			t.Errorf("late host %v: srtt %v, less than its delay %v: the lab did not delay it", h.Addr, h.SRTT, lateBy)
		}
	}
	name := map[netip.Addr]string{d.dead: "dead", d.closed: "all closed", d.firewalled: "firewalled", d.late: "late"}
	for a, w := range want {
		if g, ok := got[a]; !ok {
			t.Errorf("%s host %v: not in the report", name[a], a)
		} else if !judgedEqual(g, w) {
			t.Errorf("%s host %v:\n got %v\nwant %v", name[a], a, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d hosts in the report, want %d", len(got), len(want))
	}
}

func judgedEqual(a, b judged) bool {
	return a.State == b.State && a.Reason == b.Reason && a.By == b.By && maps.Equal(a.Ports, b.Ports)
}

// Issue 18's proof, by the library: on an IPv4 and an IPv6 LAN, discovery
// judges a dead address, a live host with every port closed, a live host
// that drops everything but ARP/ND, and a host that answers 300 ms late,
// each exactly and with its reason; HostsOnly gives the same verdicts
// without ports; and without discovery the scan says what it always did.
func TestDiscoveryJudgesEachHost(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			d := newDiscoverLab(t, v6)
			for _, c := range []struct {
				name                string
				discover, hostsOnly bool
			}{
				{"discovery", true, false},
				{"hosts only", true, true},
				{"skip discovery", false, false},
			} {
				t.Run(c.name, func(t *testing.T) {
					// Each case starts from an empty neighbour table, as a
					// fresh scan of the LAN would.
					d.scanner.Run(t, "ip", "neigh", "flush", "all")
					rep := scanIn(t, d.scanner, d.targets(), scan.Options{Ports: d.ports, Discover: c.discover, HostsOnly: c.hostsOnly})
					d.check(t, rep, d.want(c.discover, c.hostsOnly))
					if c.hostsOnly && (!rep.HostsOnly || rep.Probes != 0) {
						t.Errorf("hosts only: report HostsOnly %v after %d connects; want true and none", rep.HostsOnly, rep.Probes)
					}
					if c.discover && rep.Discovery <= 0 || !c.discover && rep.Discovery != 0 {
						t.Errorf("Report.Discovery %v with Discover %v", rep.Discovery, c.discover)
					}
					t.Logf("%v (discovery %v), %d connects", rep.Elapsed, rep.Discovery, rep.Probes)
				})
			}
		})
	}
}

// The dead host costs discovery a fraction of the kernel's 3 s of ARP
// retries, and its ports are never probed.
func TestDiscoverySkipsDeadHostsPorts(t *testing.T) {
	d := newDiscoverLab(t, false)
	var probed []netip.Addr // OnPort calls are serialized
	rep := scanIn(t, d.scanner, []scan.Target{{Addr: d.dead}, {Addr: d.closed}}, scan.Options{
		Ports: d.ports, Discover: true, MaxRetries: -1,
		OnPort: func(p scan.Port) { probed = append(probed, p.Addr) },
	})
	if slices.Contains(probed, d.dead) || len(probed) != len(d.ports) {
		t.Fatalf("ports decided on %v; want %d, all on %v", probed, len(d.ports), d.closed)
	}
	if rep.Discovery <= 0 || rep.Discovery >= 3*time.Second {
		t.Fatalf("discovery took %v; want some, and less than the kernel's own ARP retries", rep.Discovery)
	}
	t.Logf("discovery %v, scan %v", rep.Discovery, rep.Elapsed)
}
