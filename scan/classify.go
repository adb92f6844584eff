package scan

import (
	"net/netip"
	"syscall"

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
	probe.ICMP
	fromTarget bool // the target itself sent it
}

// classify maps a failed connect to a verdict: the class is probe's, the
// port state and reason nmap's. icmp is the error the kernel queued, nil
// when none; sync says connect() itself failed, before any packet could
// come back (so the decision was made by this host).
func classify(errno syscall.Errno, icmp *icmpInfo, sync bool) verdict {
	v := verdict{errno: errno}
	var msg *probe.ICMP
	if icmp != nil {
		msg = &icmp.ICMP
		v.from, v.evidence = icmp.From, icmp.String()
	}
	v.class = probe.ClassifyErrno(errno, msg)
	switch v.class {
	case probe.Refused:
		v.state, v.reason, v.answered = Closed, ReasonConnRefused, true
		if icmp != nil && icmp.Kind() == probe.ICMPPortUnreachable {
			v.reason = ReasonPortUnreach
		}
		return v
	case probe.Reset:
		// A reset after the handshake (one before it is ECONNREFUSED): the
		// port answered SYN-ACK, so it is open, as nmap counts it.
		v.state, v.reason, v.answered = Open, ReasonSynAck, true
		return v
	case probe.Timeout:
		return vNoResponse
	case probe.HostUnreachable, probe.NetUnreachable:
		if icmp != nil {
			return unreachable(v, icmp)
		}
		if v.class == probe.HostUnreachable {
			v.host, v.reason = HostUnreachable, ReasonHostUnreach
			v.evidence = "connect: no route to host (reported by this host)"
			if sync {
				v.evidence = "connect: no route to host (an unreachable route on this host)"
			}
			return v
		}
		v.host, v.reason = HostNoRoute, ReasonNoRoute
		v.evidence = "connect: network is unreachable (no route on this host, or a broadcast or multicast address)"
		return v
	}
	v.state = Filtered
	switch {
	case errno == syscall.EPERM:
		v.reason = ReasonLocalProhibited
		v.evidence = "connect: operation not permitted (a firewall rule on this host)"
	case icmp != nil:
		// An ICMP error of a kind probe does not name, with an errno of
		// this host's: something answered, but not about reachability.
		v.reason, v.answered = ReasonLocalError, true
	case errno == syscall.EACCES:
		v.reason = ReasonLocalProhibited
		v.evidence = "connect: permission denied (a prohibit route or firewall rule on this host)"
	default:
		v.reason = ReasonLocalError
		v.evidence = "connect: " + errno.Error()
	}
	return v
}

// unreachable follows nmap: admin-prohibited means filtered; an unreachable
// from the target itself is about this port; one from anyone else (a router,
// or this host when ARP/ND got no answer) is about the whole host.
func unreachable(v verdict, icmp *icmpInfo) verdict {
	v.answered = true
	switch {
	case icmp.Kind().Prohibited():
		v.state, v.reason = Filtered, ReasonAdminProhibited
		return v
	case v.class == probe.HostUnreachable:
		v.reason, v.host = ReasonHostUnreach, HostUnreachable
	default:
		v.reason, v.host = ReasonNetUnreach, HostNoRoute
	}
	if icmp.fromTarget {
		return v.asPort()
	}
	v.answered = false // the router's RTT says nothing about the target
	return v
}
