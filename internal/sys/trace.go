package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// Hop is the answer to one path probe: a UDP datagram sent with a small
// TTL (hop limit), and the ICMP error it provoked.
type Hop struct {
	TTL     int
	From    netip.Addr    // who answered; zero when nobody did within the wait
	RTT     time.Duration // zero when nobody answered
	Reached bool          // the destination itself answered (port unreachable)
	What    string        // "time exceeded", "port unreachable", "host unreachable", ...
	Errno   syscall.Errno // the error the kernel reported with it
}

// Origins of a sock_extended_err (linux/errqueue.h).
const (
	eeOriginLocal = 1
	eeOriginICMP  = 2
	eeOriginICMP6 = 3
)

// parseExtendedErr decodes the IP_RECVERR / IPV6_RECVERR control message: a
// sock_extended_err followed by the offender's sockaddr.
func parseExtendedErr(b []byte) (Hop, error) {
	if len(b) < 16 {
		return Hop{}, fmt.Errorf("%w: sock_extended_err of %d bytes", ErrNetlinkTruncated, len(b))
	}
	var h Hop
	h.Errno = syscall.Errno(binary.NativeEndian.Uint32(b[0:4]))
	origin, typ, code := b[4], b[5], b[6]
	sa := b[16:]
	if len(sa) >= 2 {
		switch binary.NativeEndian.Uint16(sa[0:2]) {
		case 2: // AF_INET: family, port, addr[4]
			if len(sa) >= 8 {
				h.From = netip.AddrFrom4([4]byte(sa[4:8]))
			}
		case 10: // AF_INET6: family, port, flowinfo, addr[16]
			if len(sa) >= 24 {
				h.From = netip.AddrFrom16([16]byte(sa[8:24]))
			}
		}
	}
	switch origin {
	case eeOriginICMP:
		h.What, h.Reached = icmp4What(typ, code)
	case eeOriginICMP6:
		h.What, h.Reached = icmp6What(typ, code)
	case eeOriginLocal:
		h.What = "local error: " + h.Errno.Error()
	default:
		return Hop{}, errors.New("sys: extended error of unknown origin " + fmt.Sprint(origin))
	}
	return h, nil
}

func icmp4What(typ, code uint8) (string, bool) {
	switch typ {
	case 11:
		return "time exceeded", false
	case 3:
		switch code {
		case 3:
			return "port unreachable", true
		case 0:
			return "net unreachable", false
		case 1:
			return "host unreachable", false
		case 9, 10, 13:
			return "administratively prohibited", false
		}
		return fmt.Sprintf("destination unreachable (code %d)", code), false
	}
	return fmt.Sprintf("icmp type %d code %d", typ, code), false
}

func icmp6What(typ, code uint8) (string, bool) {
	switch typ {
	case 3:
		return "time exceeded", false
	case 1:
		switch code {
		case 4:
			return "port unreachable", true
		case 0:
			return "no route", false
		case 1:
			return "administratively prohibited", false
		case 3:
			return "address unreachable", false
		}
		return fmt.Sprintf("destination unreachable (code %d)", code), false
	}
	return fmt.Sprintf("icmpv6 type %d code %d", typ, code), false
}
