package probe

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/reach-tools/reach/internal/sys"
)

// Class is the outcome of a probe, the vocabulary every reach command shares.
// A Class is also an error value, so errors.Is(err, probe.Refused) works on
// any error a probe returns.
type Class string

// The classes, as in DESIGN.md's classification table.
const (
	Open            Class = "open"             // handshake completed
	Refused         Class = "refused"          // RST or ICMP port-unreachable (ECONNREFUSED)
	Timeout         Class = "timeout"          // no answer within the deadline
	HostUnreachable Class = "host-unreachable" // EHOSTUNREACH: ARP failed, ICMP host/admin-prohibited
	NetUnreachable  Class = "net-unreachable"  // ENETUNREACH: no route from this host
	DNS             Class = "dns"              // the name did not resolve
	Reset           Class = "reset"            // connected, then RST before any data
	ClosedByPeer    Class = "closed-by-peer"   // connected, then EOF before any data
	LocalError      Class = "local-error"      // our own host failed: EMFILE, EADDRNOTAVAIL, EPERM
	Canceled        Class = "canceled"         // the caller gave up; says nothing about the target
)

// Classes lists every class a probe can produce, in table order.
var Classes = []Class{Open, Refused, Timeout, HostUnreachable, NetUnreachable, DNS, Reset, ClosedByPeer, LocalError, Canceled}

func (c Class) Error() string { return string(c) }

// String returns the class name.
func (c Class) String() string { return string(c) }

// Explain says in one line what the kernel or the peer told us.
func (c Class) Explain() string {
	switch c {
	case Open:
		return "the TCP handshake completed"
	case Refused:
		return "the host answered with a reset (or ICMP port-unreachable): nothing accepts connections on that port there"
	case Timeout:
		return "nothing answered within the deadline: packets are dropped or the host is unreachable on a routed path"
	case HostUnreachable:
		return "the host is unreachable: no ARP answer on the link, or an ICMP host-unreachable/admin-prohibited came back"
	case NetUnreachable:
		return "there is no route from this host to that network"
	case DNS:
		return "the name did not resolve to an address"
	case Reset:
		return "the connection was accepted, then reset by the peer before any data"
	case ClosedByPeer:
		return "the connection was accepted, then closed by the peer before any data"
	case LocalError:
		return "this host failed or ended the attempt itself (file descriptors, ports, local firewall, a destroyed socket)"
	case Canceled:
		return "the attempt was canceled before it finished"
	}
	return "unknown outcome"
}

// Causes lists the typical causes of a class, most likely first.
func (c Class) Causes() []string {
	switch c {
	case Refused:
		return []string{"the server is not running", "it listens on another port", "it listens only on another address (e.g. 127.0.0.1 or IPv6 only)", "a firewall rejects with tcp-reset or port-unreachable"}
	case Timeout:
		return []string{"a firewall drops the packets", "the server's accept backlog is full", "the host is down behind a router"}
	case HostUnreachable:
		return []string{"the host is down or not on the link", "a firewall rejects with admin-prohibited or host-unreachable"}
	case NetUnreachable:
		return []string{"no route to that network from this host", "the interface is down"}
	case DNS:
		return []string{"the name is wrong", "the resolver is down or unreachable", "the record does not exist for this address family"}
	case Reset:
		return []string{"the server crashed or restarted", "the server is full (connection limit)", "application-level access control"}
	case ClosedByPeer:
		// Accepted, then closed: the port had a listener, so a crash is
		// less likely than a proxy (docker-proxy, a load balancer)
		// whose backend is down.
		return []string{"a proxy or load balancer accepted for a server behind it that is down", "the server is full (connection limit)", "application-level access control", "the server crashed or restarted"}
	case LocalError:
		return []string{"out of file descriptors", "ephemeral ports exhausted", "a local OUTPUT firewall rule",
			"the connection was destroyed on this host (ss -K, a service load balancer dropping a backend)"}
	}
	return nil
}

// Retryable reports whether trying again later can change the outcome.
// Local errors such as EMFILE and caller cancellation are not retried.
func (c Class) Retryable() bool {
	switch c {
	case Refused, Timeout, HostUnreachable, NetUnreachable, DNS, Reset, ClosedByPeer:
		return true
	}
	return false
}

// Classify maps an error from a dial, read or lookup to a class and the errno
// behind it (0 when there is none). A nil error is Open.
func Classify(err error) (Class, syscall.Errno) {
	if err == nil {
		return Open, 0
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class, pe.Errno
	}
	var c Class
	if errors.As(err, &c) {
		return c, 0 // a bare class, e.g. from a fake DialFunc in tests
	}
	var errno syscall.Errno
	hasErrno := errors.As(err, &errno)
	errno = sys.Errno(errno) // Windows reports Winsock numbers
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled, 0
	case errors.As(err, &dnsErr):
		return DNS, 0
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return Timeout, 0
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClosedByPeer, 0
	case !hasErrno:
		return LocalError, 0
	case errno == syscall.EACCES && dialedIPv6(err):
		// net.Dialer does not read the error queue, so the ICMPv6 error
		// behind EACCES is inferred: admin-prohibited (a firewall REJECT on
		// the path or the host) is likelier than a prohibit route here.
		return ClassifyErrno(errno, &adminProhibited6), errno
	}
	return ClassifyErrno(errno, nil), errno
}

// dialedIPv6 reports whether err comes from connecting to an IPv6 address.
func dialedIPv6(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		return false
	}
	a, ok := oe.Addr.(*net.TCPAddr)
	return ok && a.IP.To4() == nil
}

// adminProhibited6 is the ICMPv6 error Classify infers behind EACCES.
var adminProhibited6 = ICMP{V6: true, Type: 1, Code: 1}

// ClassifyErrno is the one mapping from what the kernel reported about a
// failed TCP connect, read or write to a class. icmp is the ICMP error
// queued with errno, nil when none came or the caller cannot read the
// socket's error queue. A named ICMP kind decides between causes the errno
// confuses: Linux reports a router's admin-prohibited as EHOSTUNREACH or
// ENETUNREACH, and ICMPv6's as EACCES, which a prohibit route on this host
// also gives.
func ClassifyErrno(errno syscall.Errno, icmp *ICMP) Class {
	switch errno {
	case syscall.ECONNREFUSED: // a reset to the SYN, or ICMP port-unreachable
		return Refused
	case syscall.ECONNRESET, syscall.EPIPE: // a reset after the handshake
		return Reset
	case syscall.ETIMEDOUT:
		return Timeout
	case syscall.EPERM: // this host's firewall refused to send, whatever came back before
		return LocalError
	}
	if icmp != nil {
		if c, ok := icmp.Class(); ok {
			return c
		}
	}
	switch errno {
	case syscall.EHOSTUNREACH, syscall.EHOSTDOWN:
		return HostUnreachable
	case syscall.ENETUNREACH, syscall.ENETDOWN:
		return NetUnreachable
	}
	// This host's own doing: EMFILE, EADDRNOTAVAIL, EACCES (a prohibit route
	// or firewall rule), and ECONNABORTED, which no packet carries: Linux
	// gives it when a socket is destroyed on this host (ss -K, or a service
	// load balancer whose backend went away), never for a peer's reset.
	return LocalError
}
