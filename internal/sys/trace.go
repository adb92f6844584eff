package sys

import (
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

// parseHop decodes the IP_RECVERR / IPV6_RECVERR control message a path
// probe provoked.
func parseHop(b []byte) (Hop, error) {
	e, err := ParseExtendedErr(b)
	if err != nil {
		return Hop{}, err
	}
	h := Hop{From: e.Offender, Errno: e.Errno}
	switch e.Origin {
	case OriginICMP:
		h.What, h.Reached = icmp4What(e.Type, e.Code)
	case OriginICMP6:
		h.What, h.Reached = icmp6What(e.Type, e.Code)
	case OriginLocal:
		h.What = "local error: " + h.Errno.Error()
	default:
		return Hop{}, errors.New("sys: extended error of unknown origin " + fmt.Sprint(e.Origin))
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
