// Package probe makes one bounded attempt to reach a TCP endpoint and
// classifies the outcome (open, refused, timeout, host-unreachable,
// net-unreachable, dns, reset, closed-by-peer, local-error). Every other
// reach package speaks in probe results, so the meaning of each class is
// defined once, here: ClassifyErrno is the one mapping from what the kernel
// reports (an errno, and the ICMP error behind it when the caller read one)
// to a class, and ICMP names what an ICMP destination-unreachable says.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/reach-tools/reach/endpoint"
)

// DefaultTimeout bounds a probe when Options.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// DialFunc dials a network address; net.Dialer.DialContext has this shape.
// Tests pass fakes, users can route through a proxy.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Options tune a probe. The zero value probes over TCP with DefaultTimeout,
// the system resolver, and no post-connect read.
type Options struct {
	// Timeout bounds the whole attempt, name resolution included.
	Timeout time.Duration
	// Network is "tcp" (default), "tcp4" or "tcp6"; it also filters the
	// addresses a name resolves to.
	Network string
	// Dial makes the connection; nil uses a net.Dialer.
	Dial DialFunc
	// Resolver resolves names; nil uses net.DefaultResolver.
	Resolver *net.Resolver
	// ReadWait, when positive, waits that long after connecting for the peer
	// to speak, reset (class Reset) or close (class ClosedByPeer). Servers
	// that accept and then drop connections look open without it.
	ReadWait time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func (o Options) network() string {
	if o.Network == "" {
		return "tcp"
	}
	return o.Network
}

// Result is the outcome of one probe.
type Result struct {
	Endpoint endpoint.Endpoint
	Addr     netip.AddrPort // the address dialled; zero when resolution failed
	Local    netip.AddrPort // our side of the connection, when one was made
	Class    Class
	Errno    syscall.Errno // 0 when no errno was involved
	RTT      time.Duration // time spent connecting (resolution excluded)
	Lookup   time.Duration // time spent resolving the name; 0 for literals
	Resolved []netip.Addr  // every address the name resolved to
	Banner   []byte        // first bytes the server sent within ReadWait
	Err      error         // *Error, nil when Class is Open
}

// OK reports whether the endpoint accepted the connection.
func (r Result) OK() bool { return r.Class == Open }

// Error is a failed probe: what was attempted, against what, and why. It
// unwraps to the underlying error (e.g. *net.OpError, syscall.Errno), and
// errors.Is(err, probe.Refused) matches its class.
type Error struct {
	Op    string // "lookup", "dial" or "read"
	Addr  string // host:port as dialled, or the name looked up
	Class Class
	Errno syscall.Errno
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s: %v", e.Op, e.Addr, e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches the error's class, so callers can write errors.Is(err, probe.Timeout).
func (e *Error) Is(target error) bool {
	c, ok := target.(Class)
	return ok && c == e.Class
}

// ErrSelfConnect marks a loopback connect that the kernel completed to our
// own socket: the source port it chose was the destination port, nothing
// listens there. It is reported as Refused.
var ErrSelfConnect = errors.New("probe: connected to itself (no listener; the kernel picked the destination port as source port)")

// Run probes ep once and closes the connection.
func Run(ctx context.Context, ep endpoint.Endpoint, opt Options) Result {
	conn, r := Dial(ctx, ep, opt)
	if conn != nil {
		conn.Close()
	}
	return r
}

// Dial probes ep once and, when it is open, returns the connection too; the
// caller owns it. A name is resolved first and its first address of the
// wanted family is dialled; Result.Resolved lists them all.
func Dial(ctx context.Context, ep endpoint.Endpoint, opt Options) (net.Conn, Result) {
	r := Result{Endpoint: ep}
	ctx, cancel := context.WithTimeout(ctx, opt.timeout())
	defer cancel()

	addr, ok := ep.Addr()
	if !ok {
		start := time.Now()
		addrs, err := resolve(ctx, ep.Host, opt)
		r.Lookup = time.Since(start)
		if err != nil {
			r.fail("lookup", ep.Host, err)
			return nil, r
		}
		r.Resolved = addrs
		addr = addrs[0]
	} else {
		r.Resolved = []netip.Addr{addr}
	}
	conn, rr := DialAddr(ctx, netip.AddrPortFrom(addr, ep.Port), opt)
	rr.Endpoint, rr.Lookup, rr.Resolved = r.Endpoint, r.Lookup, r.Resolved
	return conn, rr
}

// Resolve returns the addresses a host resolves to, filtered by
// opt.Network's family, as the probe would use them.
func Resolve(ctx context.Context, host string, opt Options) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, opt.timeout())
	defer cancel()
	addrs, err := resolve(ctx, host, opt)
	if err != nil {
		c, errno := Classify(err)
		return nil, &Error{Op: "lookup", Addr: host, Class: c, Errno: errno, Err: err}
	}
	return addrs, nil
}

func resolve(ctx context.Context, host string, opt Options) ([]netip.Addr, error) {
	res := opt.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	ipNet := map[string]string{"tcp": "ip", "tcp4": "ip4", "tcp6": "ip6"}[opt.network()]
	if ipNet == "" {
		return nil, fmt.Errorf("probe: unsupported network %q (want tcp, tcp4 or tcp6)", opt.Network)
	}
	addrs, err := res.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			// Keep it a DNS failure: the name did not resolve in time.
			return nil, &net.DNSError{Err: "timed out: no answer within " + opt.timeout().String(), Name: host, IsTimeout: true, UnwrapErr: err}
		}
		// A cancelled lookup stays cancelled (Classify: Canceled): the
		// caller gave up, which says nothing about the name.
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no " + ipNet + " address", Name: host, IsNotFound: true}
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// DialAddr probes one address; see Dial.
func DialAddr(ctx context.Context, ap netip.AddrPort, opt Options) (net.Conn, Result) {
	r := Result{Endpoint: endpoint.FromAddrPort(ap), Addr: ap, Resolved: []netip.Addr{ap.Addr()}}
	ctx, cancel := context.WithTimeout(ctx, opt.timeout())
	defer cancel()

	dial := opt.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	start := time.Now()
	conn, err := dial(ctx, opt.network(), ap.String())
	r.RTT = time.Since(start)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v: %w", opt.timeout(), err)
		}
		r.fail("dial", ap.String(), err)
		return nil, r
	}
	if la, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		r.Local = la.AddrPort()
		r.Local = netip.AddrPortFrom(r.Local.Addr().Unmap(), r.Local.Port())
	}
	if r.Local == ap {
		conn.Close()
		r.fail("dial", ap.String(), fmt.Errorf("%w: %w", ErrSelfConnect, syscall.ECONNREFUSED))
		return nil, r
	}
	if opt.ReadWait > 0 {
		if err := readWait(ctx, conn, opt.ReadWait, &r); err != nil {
			conn.Close()
			r.fail("read", ap.String(), err)
			return nil, r
		}
	}
	r.Class = Open
	return conn, r
}

// readWait reads briefly after connecting. A timeout is success (the server
// is waiting for us); data is kept as the banner; EOF and RST are failures.
func readWait(ctx context.Context, conn net.Conn, wait time.Duration, r *Result) error {
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if n > 0 {
		r.Banner = buf[:n]
		return nil
	}
	if c, _ := Classify(err); c == Timeout {
		return nil
	}
	return err
}

func (r *Result) fail(op, addr string, err error) {
	r.Class, r.Errno = Classify(err)
	if r.Class == Open { // a fake dialer returned probe.Open as an error; treat as local
		r.Class = LocalError
	}
	r.Err = &Error{Op: op, Addr: addr, Class: r.Class, Errno: r.Errno, Err: err}
}
