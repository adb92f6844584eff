package scan

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/reach-tools/reach/probe"
)

// verdict is what one probe's outcome means, for the port or for the host.
type verdict struct {
	state    State
	host     HostState // set when the outcome condemns the whole host
	reason   string
	class    probe.Class
	errno    syscall.Errno
	from     netip.Addr // sender of the ICMP error
	evidence string
	answered bool // something on the path answered, so the RTT is a sample
}

// asPort turns a host-level verdict into a port one, for a host that has
// already answered on other ports: the error is about this port's path only.
func (v verdict) asPort() verdict {
	v.host = ""
	v.state = Filtered
	v.answered = true
	return v
}

var (
	vOpen        = verdict{state: Open, reason: ReasonSynAck, class: probe.Open, answered: true}
	vSelfConnect = verdict{state: Closed, reason: ReasonSelfConnect, class: probe.Refused, errno: syscall.ECONNREFUSED}
	vNoResponse  = verdict{state: Filtered, reason: ReasonNoResponse, class: probe.Timeout}
)

// icmpInfo is an ICMP error the kernel queued on the socket (IP_RECVERR).
type icmpInfo struct {
	v6         bool
	typ, code  uint8
	offender   netip.Addr
	fromTarget bool // the target itself sent it
}

func (i *icmpInfo) String() string {
	name := map[bool]string{false: "ICMP", true: "ICMPv6"}[i.v6]
	return fmt.Sprintf("%s %s from %s", name, i.what(), i.offender)
}

// what names the ICMP destination-unreachable code.
func (i *icmpInfo) what() string {
	if i.v6 {
		switch i.code {
		case 0:
			return "no-route"
		case 1:
			return "admin-prohibited"
		case 3:
			return "address-unreachable"
		case 4:
			return "port-unreachable"
		case 5, 6:
			return "policy-reject"
		}
		return fmt.Sprintf("type %d code %d", i.typ, i.code)
	}
	switch i.code {
	case 0, 6, 11:
		return "net-unreachable"
	case 1, 7, 12:
		return "host-unreachable"
	case 3:
		return "port-unreachable"
	case 9, 10, 13:
		return "admin-prohibited"
	}
	return fmt.Sprintf("type %d code %d", i.typ, i.code)
}

// classify maps a failed connect to a verdict. icmp is the error the kernel
// queued, nil when none; sync says connect() itself failed, before any
// packet could come back (so the decision was made by this host).
func classify(errno syscall.Errno, icmp *icmpInfo, sync bool) verdict {
	v := verdict{errno: errno}
	if icmp != nil {
		v.from, v.evidence = icmp.offender, icmp.String()
	}
	switch errno {
	case syscall.ECONNREFUSED:
		v.state, v.reason, v.class, v.answered = Closed, ReasonConnRefused, probe.Refused, true
		if icmp != nil && icmp.what() == "port-unreachable" {
			v.reason = ReasonPortUnreach
		}
		return v
	case syscall.ECONNRESET, syscall.EPIPE:
		// A reset after the handshake (one before it is ECONNREFUSED): the
		// port answered SYN-ACK, so it is open, as nmap counts it.
		v.state, v.reason, v.class, v.answered = Open, ReasonSynAck, probe.Reset, true
		return v
	case syscall.ETIMEDOUT:
		return vNoResponse
	case syscall.EPERM:
		v.state, v.reason, v.class = Filtered, ReasonLocalProhibited, probe.LocalError
		v.evidence = "connect: operation not permitted (a firewall rule on this host)"
		return v
	}
	if icmp != nil {
		return classifyICMP(v, icmp)
	}
	switch errno {
	case syscall.EHOSTUNREACH, syscall.EHOSTDOWN:
		v.host, v.reason, v.class = HostUnreachable, ReasonHostUnreach, probe.HostUnreachable
		v.evidence = "connect: no route to host (reported by this host)"
		if sync {
			v.evidence = "connect: no route to host (an unreachable route on this host)"
		}
	case syscall.ENETUNREACH, syscall.ENETDOWN:
		v.host, v.reason, v.class = HostNoRoute, ReasonNoRoute, probe.NetUnreachable
		v.evidence = "connect: network is unreachable (no route on this host, or a broadcast or multicast address)"
	case syscall.EACCES:
		v.state, v.reason, v.class = Filtered, ReasonLocalProhibited, probe.LocalError
		v.evidence = "connect: permission denied (a prohibit route or firewall rule on this host)"
	default:
		v.state, v.reason, v.class = Filtered, ReasonLocalError, probe.LocalError
		v.evidence = "connect: " + errno.Error()
	}
	return v
}

// classifyICMP follows nmap: admin-prohibited means filtered; an unreachable
// from the target itself is about this port; one from anyone else (a router,
// or this host when ARP/ND got no answer) is about the whole host.
func classifyICMP(v verdict, icmp *icmpInfo) verdict {
	v.answered = true
	switch icmp.what() {
	case "admin-prohibited", "policy-reject":
		v.state, v.reason, v.class = Filtered, ReasonAdminProhibited, probe.HostUnreachable
		return v
	case "host-unreachable", "address-unreachable":
		v.reason, v.class = ReasonHostUnreach, probe.HostUnreachable
		v.host = HostUnreachable
	case "net-unreachable", "no-route":
		v.reason, v.class = ReasonNetUnreach, probe.NetUnreachable
		v.host = HostNoRoute
	default:
		v.state, v.reason, v.class = Filtered, ReasonLocalError, probe.LocalError
		return v
	}
	if icmp.fromTarget {
		return v.asPort()
	}
	v.answered = false // the router's RTT says nothing about the target
	return v
}

// Linux's struct sock_extended_err origins and address families.
const (
	eeOriginICMP  = 2
	eeOriginICMP6 = 3
	afInet        = 2
	afInet6       = 10
)

// parseExtendedErr decodes a Linux IP_RECVERR/IPV6_RECVERR control message:
// struct sock_extended_err followed by the offender's sockaddr.
func parseExtendedErr(b []byte) (icmpInfo, bool) {
	if len(b) < 16 {
		return icmpInfo{}, false
	}
	origin, typ, code := b[4], b[5], b[6]
	var in icmpInfo
	switch {
	case origin == eeOriginICMP && typ == 3: // destination unreachable
	case origin == eeOriginICMP6 && typ == 1:
		in.v6 = true
	default:
		return icmpInfo{}, false
	}
	in.typ, in.code = typ, code
	off := b[16:]
	if len(off) >= 2 {
		switch binary.NativeEndian.Uint16(off) {
		case afInet:
			if len(off) >= 8 {
				in.offender = netip.AddrFrom4([4]byte(off[4:8]))
			}
		case afInet6:
			if len(off) >= 24 {
				in.offender = netip.AddrFrom16([16]byte(off[8:24])).Unmap()
			}
		}
	}
	return in, true
}

// rttEstimator is RFC 6298's smoothed RTT, which nmap uses for its timeouts.
type rttEstimator struct {
	srtt, rttvar time.Duration
	n            int
}

func (r *rttEstimator) update(sample time.Duration) {
	if r.n == 0 {
		r.srtt, r.rttvar = sample, sample/2
	} else {
		d := r.srtt - sample
		if d < 0 {
			d = -d
		}
		r.rttvar += (d - r.rttvar) / 4
		r.srtt += (sample - r.srtt) / 8
	}
	r.n++
}

// timeout is srtt + 4·rttvar, clamped to [lo, hi]; hi before any sample.
func (r *rttEstimator) timeout(lo, hi time.Duration) time.Duration {
	if r.n == 0 {
		return hi
	}
	return min(max(r.srtt+4*r.rttvar, lo), hi)
}
