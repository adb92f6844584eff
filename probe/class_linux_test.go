package probe_test

import (
	"net/netip"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/probe"
)

// What Linux reports for each destination-unreachable code (icmp_err_convert
// in net/ipv4/icmp.c, icmpv6_err_convert in net/ipv6/icmp.c), and the class
// with and without the ICMP error known: the message refines the errno.
func TestClassifyErrnoWithICMP(t *testing.T) {
	from := netip.MustParseAddr("198.18.0.1")
	tests := []struct {
		v6         bool
		code       uint8
		errno      syscall.Errno
		kind       probe.ICMPKind
		withICMP   probe.Class
		errnoAlone probe.Class
	}{
		{false, 0, syscall.ENETUNREACH, probe.ICMPNetUnreachable, probe.NetUnreachable, probe.NetUnreachable},
		{false, 1, syscall.EHOSTUNREACH, probe.ICMPHostUnreachable, probe.HostUnreachable, probe.HostUnreachable},
		{false, 2, syscall.ENOPROTOOPT, "", probe.LocalError, probe.LocalError},
		{false, 3, syscall.ECONNREFUSED, probe.ICMPPortUnreachable, probe.Refused, probe.Refused},
		{false, 4, syscall.EMSGSIZE, "", probe.LocalError, probe.LocalError},
		{false, 5, syscall.EOPNOTSUPP, "", probe.LocalError, probe.LocalError},
		{false, 6, syscall.ENETUNREACH, probe.ICMPNetUnreachable, probe.NetUnreachable, probe.NetUnreachable},
		{false, 7, syscall.EHOSTDOWN, probe.ICMPHostUnreachable, probe.HostUnreachable, probe.HostUnreachable},
		{false, 8, syscall.ENONET, "", probe.LocalError, probe.LocalError},
		// A network prohibited is a firewall's verdict, not a missing route.
		{false, 9, syscall.ENETUNREACH, probe.ICMPAdminProhibited, probe.HostUnreachable, probe.NetUnreachable},
		{false, 10, syscall.EHOSTUNREACH, probe.ICMPAdminProhibited, probe.HostUnreachable, probe.HostUnreachable},
		{false, 11, syscall.ENETUNREACH, probe.ICMPNetUnreachable, probe.NetUnreachable, probe.NetUnreachable},
		{false, 12, syscall.EHOSTUNREACH, probe.ICMPHostUnreachable, probe.HostUnreachable, probe.HostUnreachable},
		{false, 13, syscall.EHOSTUNREACH, probe.ICMPAdminProhibited, probe.HostUnreachable, probe.HostUnreachable},
		{false, 14, syscall.EHOSTUNREACH, "", probe.HostUnreachable, probe.HostUnreachable},
		{false, 15, syscall.EHOSTUNREACH, "", probe.HostUnreachable, probe.HostUnreachable},
		{true, 0, syscall.ENETUNREACH, probe.ICMPNoRoute, probe.NetUnreachable, probe.NetUnreachable},
		// ICMPv6 admin-prohibited is EACCES, which a prohibit route here
		// gives too: only the message tells them apart.
		{true, 1, syscall.EACCES, probe.ICMPAdminProhibited, probe.HostUnreachable, probe.LocalError},
		{true, 2, syscall.EHOSTUNREACH, "", probe.HostUnreachable, probe.HostUnreachable},
		{true, 3, syscall.EHOSTUNREACH, probe.ICMPAddressUnreachable, probe.HostUnreachable, probe.HostUnreachable},
		{true, 4, syscall.ECONNREFUSED, probe.ICMPPortUnreachable, probe.Refused, probe.Refused},
		{true, 5, syscall.EACCES, probe.ICMPPolicyReject, probe.HostUnreachable, probe.LocalError},
		{true, 6, syscall.EACCES, probe.ICMPPolicyReject, probe.HostUnreachable, probe.LocalError},
	}
	for _, tt := range tests {
		m := probe.ICMP{V6: tt.v6, Type: 3, Code: tt.code, From: from}
		if tt.v6 {
			m.Type = 1
		}
		t.Run(m.String(), func(t *testing.T) {
			if got := m.Kind(); got != tt.kind {
				t.Errorf("kind %q, want %q", got, tt.kind)
			}
			if got := probe.ClassifyErrno(tt.errno, &m); got != tt.withICMP {
				t.Errorf("ClassifyErrno(%v, ICMP) = %s, want %s", tt.errno, got, tt.withICMP)
			}
			if got := probe.ClassifyErrno(tt.errno, nil); got != tt.errnoAlone {
				t.Errorf("ClassifyErrno(%v, nil) = %s, want %s", tt.errno, got, tt.errnoAlone)
			}
		})
	}
	// The errno wins where it is certain: a refusal, a reset, a timeout, or
	// this host's firewall (EPERM), whatever ICMP came before.
	prohibited := &probe.ICMP{Type: 3, Code: 13, From: from}
	for errno, want := range map[syscall.Errno]probe.Class{syscall.ECONNREFUSED: probe.Refused,
		syscall.ECONNRESET: probe.Reset, syscall.EPIPE: probe.Reset, syscall.ETIMEDOUT: probe.Timeout,
		syscall.EPERM: probe.LocalError} {
		if got := probe.ClassifyErrno(errno, prohibited); got != want {
			t.Errorf("ClassifyErrno(%v, admin-prohibited) = %s, want %s", errno, got, want)
		}
	}
}

// Every code of every type: the named kinds are exactly the ones above, each
// names a class, the others name none, and String says which.
