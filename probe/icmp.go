package probe

import (
	"fmt"
	"net/netip"
)

// ICMP is an ICMP (IPv4) or ICMPv6 error that came back about a connection
// attempt. Linux queues it on a socket that asks for it (IP_RECVERR), as the
// scanner's sockets do; net.Dialer's do not.
type ICMP struct {
	V6   bool       // ICMPv6, whose types and codes differ from ICMP's
	Type uint8      // destination unreachable is type 3 in ICMP, 1 in ICMPv6
	Code uint8      // what was unreachable, and why
	From netip.Addr // the sender: the target, a router, or this host (no ARP/ND answer)
}

// ICMPKind is what a destination-unreachable code says, in the words nmap
// and the firewalls' reject types use.
type ICMPKind string

// The destination-unreachable kinds reach tells apart.
const (
	// ICMP codes 0, 6 and 11 (ICMPv6 says ICMPNoRoute): a router has no
	// route to the target's network.
	ICMPNetUnreachable ICMPKind = "net-unreachable"
	ICMPNoRoute        ICMPKind = "no-route" // ICMPv6 code 0
	// ICMP codes 1, 7 and 12 (ICMPv6 says ICMPAddressUnreachable): no ARP
	// answer on the target's link, or a router's verdict; also what
	// REJECT --reject-with icmp-host-unreachable sends.
	ICMPHostUnreachable    ICMPKind = "host-unreachable"
	ICMPAddressUnreachable ICMPKind = "address-unreachable" // ICMPv6 code 3
	// ICMP code 3, ICMPv6 code 4. A host without a listener answers a TCP
	// SYN with a reset, so for TCP this is a firewall's REJECT (iptables'
	// default reject type).
	ICMPPortUnreachable ICMPKind = "port-unreachable"
	// ICMP codes 9, 10 and 13 (net, host, communication administratively
	// prohibited), ICMPv6 code 1: a firewall's REJECT with
	// icmp-host-prohibited, icmp-admin-prohibited or the like.
	ICMPAdminProhibited ICMPKind = "admin-prohibited"
	// ICMPv6 codes 5 and 6: source address failed ingress/egress policy, or
	// a reject route to the destination.
	ICMPPolicyReject ICMPKind = "policy-reject"
)

// Kind names the message's destination-unreachable code; "" for other
// types and for codes reach does not tell apart.
func (m ICMP) Kind() ICMPKind {
	if m.V6 {
		if m.Type != 1 {
			return ""
		}
		switch m.Code {
		case 0:
			return ICMPNoRoute
		case 1:
			return ICMPAdminProhibited
		case 3:
			return ICMPAddressUnreachable
		case 4:
			return ICMPPortUnreachable
		case 5, 6:
			return ICMPPolicyReject
		}
		return ""
	}
	if m.Type != 3 {
		return ""
	}
	switch m.Code {
	case 0, 6, 11:
		return ICMPNetUnreachable
	case 1, 7, 12:
		return ICMPHostUnreachable
	case 3:
		return ICMPPortUnreachable
	case 9, 10, 13:
		return ICMPAdminProhibited
	}
	return ""
}

// Prohibited reports the kinds that say a firewall or a policy refused the
// packet (admin-prohibited, policy-reject).
func (k ICMPKind) Prohibited() bool {
	return k == ICMPAdminProhibited || k == ICMPPolicyReject
}

// Class is the class the message gives a TCP connection attempt, and
// whether its kind names one; for an unnamed code the errno decides (see
// ClassifyErrno). A firewall's prohibition is host-unreachable, as Linux
// reports it (EHOSTUNREACH, or EACCES for ICMPv6).
func (m ICMP) Class() (Class, bool) {
	switch k := m.Kind(); {
	case k == ICMPPortUnreachable:
		return Refused, true
	case k.Prohibited(), k == ICMPHostUnreachable, k == ICMPAddressUnreachable:
		return HostUnreachable, true
	case k == ICMPNetUnreachable, k == ICMPNoRoute:
		return NetUnreachable, true
	}
	return "", false
}

// String says what came and from whom: "ICMP admin-prohibited from
// 198.18.0.1", "ICMPv6 type 1 code 2 from fd00::1".
func (m ICMP) String() string {
	s := "ICMP "
	if m.V6 {
		s = "ICMPv6 "
	}
	if k := m.Kind(); k != "" {
		s += string(k)
	} else {
		s += fmt.Sprintf("type %d code %d", m.Type, m.Code)
	}
	if m.From.IsValid() {
		s += " from " + m.From.String()
	}
	return s
}
