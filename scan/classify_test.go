package scan

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/probe"
)

func TestClassify(t *testing.T) {
	target := netip.MustParseAddr("198.18.0.2")
	router := netip.MustParseAddr("198.18.0.1")
	icmp4 := func(code uint8, from netip.Addr) *icmpInfo {
		return &icmpInfo{ICMP: probe.ICMP{Type: 3, Code: code, From: from}, fromTarget: from == target}
	}
	icmp6 := func(code uint8, from netip.Addr) *icmpInfo {
		return &icmpInfo{ICMP: probe.ICMP{V6: true, Type: 1, Code: code, From: from}, fromTarget: from == target}
	}
	tests := []struct {
		name   string
		errno  syscall.Errno
		icmp   *icmpInfo
		sync   bool
		state  State
		host   HostState
		reason string
		class  probe.Class
	}{
		{"reset", syscall.ECONNREFUSED, nil, false, Closed, "", ReasonConnRefused, probe.Refused},
		{"port unreachable", syscall.ECONNREFUSED, icmp4(3, target), false, Closed, "", ReasonPortUnreach, probe.Refused},
		{"v6 port unreachable", syscall.ECONNREFUSED, icmp6(4, target), false, Closed, "", ReasonPortUnreach, probe.Refused},
		{"admin prohibited", syscall.EHOSTUNREACH, icmp4(13, target), false, Filtered, "", ReasonAdminProhibited, probe.HostUnreachable},
		{"host prohibited by router", syscall.EHOSTUNREACH, icmp4(10, router), false, Filtered, "", ReasonAdminProhibited, probe.HostUnreachable},
		{"v6 admin prohibited", syscall.EACCES, icmp6(1, target), false, Filtered, "", ReasonAdminProhibited, probe.HostUnreachable},
		{"no ARP answer", syscall.EHOSTUNREACH, icmp4(1, router), false, "", HostUnreachable, ReasonHostUnreach, probe.HostUnreachable},
		{"no ND answer", syscall.EHOSTUNREACH, icmp6(3, router), false, "", HostUnreachable, ReasonHostUnreach, probe.HostUnreachable},
		{"host unreachable from the target", syscall.EHOSTUNREACH, icmp4(1, target), false, Filtered, "", ReasonHostUnreach, probe.HostUnreachable},
		{"net unreachable from a router", syscall.ENETUNREACH, icmp4(0, router), false, "", HostNoRoute, ReasonNetUnreach, probe.NetUnreachable},
		{"no local route", syscall.ENETUNREACH, nil, true, "", HostNoRoute, ReasonNoRoute, probe.NetUnreachable},
		{"unreachable route", syscall.EHOSTUNREACH, nil, true, "", HostUnreachable, ReasonHostUnreach, probe.HostUnreachable},
		{"local firewall", syscall.EPERM, nil, true, Filtered, "", ReasonLocalProhibited, probe.LocalError},
		{"prohibit route", syscall.EACCES, nil, true, Filtered, "", ReasonLocalProhibited, probe.LocalError},
		{"reset after the handshake", syscall.ECONNRESET, nil, false, Open, "", ReasonSynAck, probe.Reset},
		{"kernel gave up", syscall.ETIMEDOUT, nil, false, Filtered, "", ReasonNoResponse, probe.Timeout},
		{"odd errno", syscall.EPROTO, nil, false, Filtered, "", ReasonLocalError, probe.LocalError},
		// A socket destroyed on this host (ss -K) is not the peer's reset.
		{"aborted here", syscall.ECONNABORTED, nil, false, Filtered, "", ReasonLocalError, probe.LocalError},
		{"v6 policy reject", syscall.EACCES, icmp6(5, router), false, Filtered, "", ReasonAdminProhibited, probe.HostUnreachable},
		{"net prohibited", syscall.ENETUNREACH, icmp4(9, router), false, Filtered, "", ReasonAdminProhibited, probe.HostUnreachable},
		{"v6 no route from a router", syscall.ENETUNREACH, icmp6(0, router), false, "", HostNoRoute, ReasonNetUnreach, probe.NetUnreachable},
		{"firewall here after an ICMP", syscall.EPERM, icmp4(13, router), false, Filtered, "", ReasonLocalProhibited, probe.LocalError},
		{"ICMP of no named kind", syscall.EMSGSIZE, icmp4(4, router), false, Filtered, "", ReasonLocalError, probe.LocalError},
		// An unnamed code with EHOSTUNREACH (precedence cutoff) is what the
		// errno says, as probe classifies it without the message.
		{"unnamed code, host unreachable", syscall.EHOSTUNREACH, icmp4(15, router), false, "", HostUnreachable, ReasonHostUnreach, probe.HostUnreachable},
	}
	// Linux refuses a TCP connect to a broadcast or multicast address with
	// ENETUNREACH although a route exists (a /24 scan's .255): say so.
	if v := classify(syscall.ENETUNREACH, nil, true); !strings.Contains(v.evidence, "broadcast") {
		t.Errorf("no local route: evidence %q does not mention broadcast addresses", v.evidence)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := classify(tt.errno, tt.icmp, tt.sync)
			if v.state != tt.state || v.host != tt.host || v.reason != tt.reason || v.class != tt.class {
				t.Fatalf("classify = state %q host %q reason %q class %q; want %q %q %q %q",
					v.state, v.host, v.reason, v.class, tt.state, tt.host, tt.reason, tt.class)
			}
			if tt.icmp != nil && v.from != tt.icmp.From {
				t.Fatalf("from = %v, want %v", v.from, tt.icmp.From)
			}
			var msg *probe.ICMP
			if tt.icmp != nil {
				msg = &tt.icmp.ICMP
			}
			if c := probe.ClassifyErrno(tt.errno, msg); c != v.class {
				t.Fatalf("class %s, but probe.ClassifyErrno says %s", v.class, c)
			}
			if v.host != "" {
				p := v.asPort()
				if p.state != Filtered || p.host != "" || p.reason != v.reason {
					t.Fatalf("asPort = %+v", p)
				}
			}
		})
	}
}

// TestResultKeepsVerdict checks that every verdict classify can produce
// survives the engine's compact storage unchanged, and that its class is
// probe's for the same errno and ICMP error.
func TestResultKeepsVerdict(t *testing.T) {
	addr := netip.MustParseAddr("198.18.0.2")
	var vs []verdict
	vs = append(vs, vOpen, vSelfConnect, vNoResponse)
	icmps := []*icmpInfo{nil}
	for _, code := range []uint8{0, 1, 3, 4, 9, 10, 13, 7, 15} {
		icmps = append(icmps,
			&icmpInfo{ICMP: probe.ICMP{Type: 3, Code: code, From: netip.MustParseAddr("198.18.0.1")}},
			&icmpInfo{ICMP: probe.ICMP{Type: 3, Code: code, From: addr}, fromTarget: true})
	}
	for _, code := range []uint8{0, 1, 2, 3, 4, 5, 6} {
		icmps = append(icmps, &icmpInfo{ICMP: probe.ICMP{V6: true, Type: 1, Code: code, From: netip.MustParseAddr("fd00::1")}})
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, syscall.ETIMEDOUT,
		syscall.EPERM, syscall.EHOSTUNREACH, syscall.EHOSTDOWN, syscall.ENETUNREACH, syscall.ENETDOWN, syscall.EACCES,
		syscall.ECONNABORTED, syscall.EINVAL} {
		for _, in := range icmps {
			for _, sync := range []bool{false, true} {
				v := classify(errno, in, sync)
				var msg *probe.ICMP
				if in != nil {
					msg = &in.ICMP
				}
				if c := probe.ClassifyErrno(errno, msg); v.class != c {
					t.Errorf("classify(%v, %v) class %s; probe.ClassifyErrno says %s", errno, msg, v.class, c)
				}
				vs = append(vs, v, v.asPort())
			}
		}
	}
	for _, v := range vs {
		if v.host != "" {
			continue // host-level: never stored as a port
		}
		want := Port{Addr: addr, Port: 443, State: v.state, Reason: v.reason, Class: v.class, Errno: v.errno,
			From: v.from, RTT: 1234 * time.Microsecond, Tries: 3}
		if got := newResult(v, want.RTT, 2).port(addr, 443); got != want {
			t.Errorf("verdict %+v:\n got %+v\nwant %+v", v, got, want)
		}
	}
}
