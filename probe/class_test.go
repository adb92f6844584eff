package probe_test

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/probe"
)

// Every errno the mapping names, and a few it leaves to local-error, with no
// ICMP error known.
func TestClassifyErrno(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		want  probe.Class
	}{
		{syscall.ECONNREFUSED, probe.Refused},
		{syscall.ECONNRESET, probe.Reset},
		{syscall.EPIPE, probe.Reset},
		{syscall.ETIMEDOUT, probe.Timeout},
		{syscall.EHOSTUNREACH, probe.HostUnreachable},
		{syscall.EHOSTDOWN, probe.HostUnreachable},
		{syscall.ENETUNREACH, probe.NetUnreachable},
		{syscall.ENETDOWN, probe.NetUnreachable},
		{syscall.EPERM, probe.LocalError},
		{syscall.EACCES, probe.LocalError},
		// No packet carries an abort: Linux gives ECONNABORTED for a socket
		// destroyed on this host (TestAbortedIsLocal), not for a peer's RST.
		{syscall.ECONNABORTED, probe.LocalError},
		{syscall.EMFILE, probe.LocalError},
		{syscall.ENFILE, probe.LocalError},
		{syscall.EADDRNOTAVAIL, probe.LocalError},
		{syscall.EADDRINUSE, probe.LocalError},
		{syscall.ENOBUFS, probe.LocalError},
		{syscall.EINVAL, probe.LocalError}, // a blackhole route
		{syscall.EPROTO, probe.LocalError},
		{0, probe.LocalError},
	}
	for _, tt := range tests {
		if got := probe.ClassifyErrno(tt.errno, nil); got != tt.want {
			t.Errorf("ClassifyErrno(%v, nil) = %s, want %s", tt.errno, got, tt.want)
		}
	}
}

func TestICMPKinds(t *testing.T) {
	named := map[probe.ICMPKind]int{}
	for _, v6 := range []bool{false, true} {
		for typ := range 256 {
			for code := range 256 {
				m := probe.ICMP{V6: v6, Type: uint8(typ), Code: uint8(code)}
				k := m.Kind()
				c, ok := m.Class()
				if ok != (k != "") || (ok && c == "") {
					t.Fatalf("%+v: kind %q, class %q %v", m, k, c, ok)
				}
				want := fmt.Sprintf("type %d code %d", typ, code)
				if k != "" {
					named[k]++
					want = string(k)
				}
				if s := m.String(); s != map[bool]string{false: "ICMP ", true: "ICMPv6 "}[v6]+want {
					t.Fatalf("%+v: String %q", m, s)
				}
			}
		}
	}
	want := map[probe.ICMPKind]int{probe.ICMPNetUnreachable: 3, probe.ICMPNoRoute: 1, probe.ICMPHostUnreachable: 3,
		probe.ICMPAddressUnreachable: 1, probe.ICMPPortUnreachable: 2, probe.ICMPAdminProhibited: 4, probe.ICMPPolicyReject: 2}
	if fmt.Sprint(named) != fmt.Sprint(want) {
		t.Errorf("codes per kind %v, want %v", named, want)
	}
	for k := range want {
		if k.Prohibited() != (k == probe.ICMPAdminProhibited || k == probe.ICMPPolicyReject) {
			t.Errorf("%s.Prohibited() = %v", k, k.Prohibited())
		}
	}
	m := probe.ICMP{V6: true, Type: 1, Code: 1, From: netip.MustParseAddr("fd00::1")}
	if s := m.String(); s != "ICMPv6 admin-prohibited from fd00::1" {
		t.Errorf("String = %q", s)
	}
}

func TestValidInterfaceName(t *testing.T) {
	for name, want := range map[string]bool{
		"eth0": true, "lo": true, "veth0": true, "br-3f2a1b4c5d6e": true, "wg.vpn-1": true, "enp0s31f6": true,
		"": false, ".": false, "..": false, "a/b": false, "eth0:1": false, "eth 0": false, "eth\t0": false,
		"abcdefghijklmnop": false, // 16 bytes: IFNAMSIZ holds 15 and the NUL
		"abcdefghijklmno":  true,
	} {
		if got := probe.ValidInterfaceName(name); got != want {
			t.Errorf("ValidInterfaceName(%q) = %v, want %v", name, got, want)
		}
	}
}
