package cli

import (
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// A client joined to a server by two links, A and B; the target is the
// server's address on A, which the routes reach by A, and by B only for a
// socket bound to B's interface (a route of a higher metric), and so from
// the client's address on B, the only one the server accepts its port from:
// connect, scan and check reach it with --source B-address or --interface B,
// and are refused without.
func TestSourceAndInterfaceFlags(t *testing.T) {
	pair := netlab.New(t).Pair() // link A
	bin := buildReach(t)
	c, s, clientA, serverA := pair.Client, pair.Server, pair.ClientAddr, pair.ServerAddr
	clientB, serverB := pair.Lab.Link(c, s)
	ifB := c.InterfaceOf(t, clientB)
	c.AddRoute(t, netip.PrefixFrom(serverA, 24).Masked().String(), "via", serverB.String(), "dev", ifB, "metric", "500")
	ln := s.Listen(t, "tcp", netip.AddrPortFrom(serverA, 0).String())
	port := strconv.Itoa(int(testnet.ServeOn(t, ln, testnet.Drain).Port())) // open: holds until the client closes
	target := net.JoinHostPort(serverA.String(), port)
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", port, "!", "-s", clientB.String(), "-j", "REJECT", "--reject-with", "tcp-reset")

	for _, tc := range []struct {
		name  string
		flags []string
		code  int // for connect and check: 0 reached, 1 refused
		from  netip.Addr
		route string // in the check's route detail: the route from that source or interface
	}{
		{"as routed", nil, ExitFail, clientA, "dev " + c.InterfaceOf(t, clientA) + " src " + clientA.String()},
		{"--source", []string{"--source", clientB.String()}, 0, clientB, "src " + clientB.String()},
		{"--interface", []string{"--interface", ifB}, 0, clientB, "via " + serverB.String() + " dev " + ifB},
		{"--source of link A", []string{"--source", clientA.String()}, ExitFail, clientA, "src " + clientA.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := reachIn(t, bin, c, "", append([]string{"connect", "-z", "--json", "--timeout", "3s", target}, tc.flags...)...)
			var rep struct {
				Connected bool
				Local     string
			}
			if code != tc.code || json.Unmarshal([]byte(out), &rep) != nil {
				t.Fatalf("connect: exit %d, want %d; %s %s", code, tc.code, out, errs)
			}
			if rep.Connected && !strings.HasPrefix(rep.Local, tc.from.String()+":") {
				t.Errorf("connect: left from %s, want %v", rep.Local, tc.from)
			}

			out, errs, code = reachIn(t, bin, c, "", append([]string{"scan", serverA.String(), "-p", port, "--json", "--all-states"}, tc.flags...)...)
			want := map[int]string{0: `"state":"open"`, ExitFail: `"state":"closed"`}[tc.code]
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("scan: exit %d, want 0 and %s in\n%s%s", code, want, out, errs)
			}

			out, errs, code = reachIn(t, bin, c, "", append([]string{"check", "--json", "--timeout", "2s", target}, tc.flags...)...)
			var chk struct {
				Reachable bool
				Class     string
				Checks    []struct{ Name, Detail string }
			}
			if code != tc.code || json.Unmarshal([]byte(out), &chk) != nil || chk.Reachable != (tc.code == 0) {
				t.Errorf("check: exit %d reachable %v class %s, want exit %d; %s\n%s", code, chk.Reachable, chk.Class, tc.code, errs, out)
			}
			for _, ck := range chk.Checks {
				if ck.Name == "route" && !strings.Contains(ck.Detail, tc.route) {
					t.Errorf("check: route %q, want %q", ck.Detail, tc.route)
				}
			}
		})
	}

	// Values this host cannot honour are usage errors that say what it has.
	for _, tc := range []struct {
		flags []string
		msg   string
	}{
		{[]string{"--source", "198.18.0.9"}, "reach: 198.18.0.9 is not an address of this host: bind: cannot assign requested address; use one of 127.0.0.1 (lo), " + clientA.String() + " (" + c.InterfaceOf(t, clientA) + "), " + clientB.String() + " (" + ifB + "), or no source"},
		{[]string{"--interface", "eth7"}, "reach: no interface eth7: setsockopt SO_BINDTODEVICE: no such device; interfaces here: lo, " + c.InterfaceOf(t, clientA) + ", " + ifB},
		{[]string{"--source", "::1"}, "reach: source ::1 is IPv6 and cannot reach " + serverA.String() + ", which is IPv4"},
		{[]string{"--source", "198.18.0.300"}, `reach: --source "198.18.0.300": give an IP address of this host`},
		{[]string{"--interface", "eth0:1"}, `reach: --interface "eth0:1": give a network interface name`},
	} {
		for _, cmd := range [][]string{{"connect", "-z", target}, {"scan", serverA.String(), "-p", port}, {"check", target}} {
			_, errs, code := reachIn(t, bin, c, "", append(cmd, tc.flags...)...)
			if code != ExitUsage || !strings.Contains(errs, tc.msg) {
				t.Errorf("%s %v: exit %d, stderr\n%s\nwant %d and\n%s", cmd[0], tc.flags, code, errs, ExitUsage, tc.msg)
			}
		}
	}
}

// A refusal carried by a firewall's ICMP port-unreachable reads apart from a
// reset, in the attempt lines and in --json.
func TestConnectNamesICMP(t *testing.T) {
	p := netlab.New(t).Pair()
	bin := buildReach(t)
	p.Server.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "7", "-j", "REJECT", "--reject-with", "icmp-port-unreachable")
	rejected := net.JoinHostPort(p.ServerAddr.String(), "7")
	reset := net.JoinHostPort(p.ServerAddr.String(), "9") // nothing listens: a reset
	_, errs, code := reachIn(t, bin, p.Client, "", "connect", "-z", rejected, reset)
	byICMP := "refused by ICMP port-unreachable from " + p.ServerAddr.String()
	for _, want := range []string{
		"reach: attempt 1: " + rejected + ": " + byICMP + " (",
		"reach: attempt 2: " + reset + ": refused (",
		"reach: connect " + rejected + ": " + byICMP + " — ",
		"reach: connect " + reset + ": refused — ",
	} {
		if code != ExitFail || !strings.Contains(errs, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errs)
		}
	}
	out, _, _ := reachIn(t, bin, p.Client, "", "connect", "-z", "--json", rejected, reset)
	var rep struct {
		Attempts []struct{ Class, ICMP string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Attempts) != 2 ||
		rep.Attempts[0].ICMP != "ICMP port-unreachable from "+p.ServerAddr.String() || rep.Attempts[1].ICMP != "" {
		t.Errorf("--json attempts %+v (%v), want the first with its ICMP error, the second without:\n%s", rep.Attempts, err, out)
	}
}
