package sys

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
)

// ExtendedErr is one error Linux queued on a socket that asked for them
// (IP_RECVERR, IPV6_RECVERR): a struct sock_extended_err, and the address
// of whoever sent it.
type ExtendedErr struct {
	Errno    syscall.Errno // what the socket reports for it
	Origin   uint8         // OriginLocal, OriginICMP or OriginICMP6 (others exist)
	Type     uint8         // ICMP type, for the ICMP origins
	Code     uint8         // ICMP code
	Offender netip.Addr    // the sender, IPv4-mapped addresses unmapped; zero if none given
}

// Origins of a sock_extended_err (linux/errqueue.h).
const (
	OriginLocal = 1
	OriginICMP  = 2
	OriginICMP6 = 3
)

// Unreachable reports an ICMP or ICMPv6 destination-unreachable.
func (e ExtendedErr) Unreachable() bool {
	return (e.Origin == OriginICMP && e.Type == 3) || (e.Origin == OriginICMP6 && e.Type == 1)
}

// ParseExtendedErr decodes the data of an IP_RECVERR / IPV6_RECVERR control
// message: a sock_extended_err followed by the offender's sockaddr, which
// may be missing or cut short.
func ParseExtendedErr(b []byte) (ExtendedErr, error) {
	if len(b) < 16 {
		return ExtendedErr{}, fmt.Errorf("sys: sock_extended_err of %d bytes, want at least 16", len(b))
	}
	e := ExtendedErr{
		Errno:  syscall.Errno(binary.NativeEndian.Uint32(b[0:4])),
		Origin: b[4], Type: b[5], Code: b[6],
	}
	sa := b[16:]
	if len(sa) >= 2 {
		switch binary.NativeEndian.Uint16(sa[0:2]) {
		case 2: // AF_INET: family, port, addr[4]
			if len(sa) >= 8 {
				e.Offender = netip.AddrFrom4([4]byte(sa[4:8]))
			}
		case 10: // AF_INET6: family, port, flowinfo, addr[16]
			if len(sa) >= 24 {
				e.Offender = netip.AddrFrom16([16]byte(sa[8:24])).Unmap()
			}
		}
	}
	return e, nil
}
