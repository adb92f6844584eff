// Package probe makes one bounded attempt to reach a TCP endpoint and
// classifies the outcome (open, refused, timeout, host-unreachable,
// net-unreachable, dns, reset, closed-by-peer, local-error). Every other
// reach package speaks in probe results, so the meaning of each class is
// defined once, here: ClassifyErrno is the one mapping from what the kernel
// reports (an errno, and the ICMP error behind it when the caller read one)
// to a class, and ICMP names what an ICMP destination-unreachable says.
//
// On Linux a probe's own socket queues ICMP errors, so a result says which
// one came (a firewall's REJECT with port-unreachable or admin-prohibited,
// a router's, or this host's own when ARP got no answer); a probe can leave
// from a given address or interface, and hold the connection a while to
// catch a server that accepts and then drops it.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/sys"
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
	// Hold, when positive, keeps the connection up to Hold after connecting
	// (within Timeout) and reports a peer that resets or closes it meanwhile
	// (class Reset or ClosedByPeer, Result.Held saying when), even after it
	// sent data: a proxy whose backend is down, a server that accepts and
	// then finds it is full. What the peer sends is read: its first bytes
	// are Result.Banner, the rest is discarded. Hold replaces ReadWait.
	Hold time.Duration
	// Source, when valid, is the address the connection leaves from (bound
	// before connecting; the kernel still picks the port). It must be an
	// address of this host (CheckLocal) of the target's family; a name
	// resolves to addresses of that family only.
	Source netip.Addr
	// Interface, when set, makes the connection leave by that network
	// interface (SO_BINDTODEVICE, Linux only), whatever the routes prefer:
	// the target must be reachable on that interface's link or by a route
	// through it.
	Interface string
	// TLS, when set, runs a TLS handshake once TCP has connected, within
	// Timeout: Result.TLS says what it learned. Layers makes it from a URL.
	TLS *TLSOptions
	// App, when set, asks the application behind the port whether it is
	// ready (package app) once the connection is made (and TLS's handshake
	// done), within Timeout: Result.App says what it answered. Hold and
	// ReadWait are not used with TLS or App.
	App *app.Request
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
	Banner   []byte        // first bytes the server sent within ReadWait or Hold
	// Held is, with Options.Hold, how long the connection stayed up after
	// connecting: until the peer reset or closed it (Class Reset or
	// ClosedByPeer), or the whole hold.
	Held time.Duration
	// ICMP is the ICMP error the kernel received about the connection
	// attempt, when one came; nil for a reset, a timeout, and failures
	// decided on this host. It tells apart what one errno covers: a
	// refusal by ICMP port-unreachable (a firewall's REJECT) from a reset
	// (no listener), and a host-unreachable from a firewall's
	// admin-prohibited (From: the firewall's host) from one this host
	// sends itself when nobody answers ARP (From: this host). Linux only,
	// with the probe's own dialer (Options.Dial nil).
	ICMP *ICMP
	// TLS and App are the TLS and application layers' answers
	// (Options.TLS, Options.App), when the layer ran; nil otherwise. The
	// class stays Open when a layer answered not ready: its Ready and
	// Cause say so, and Ready and Layer sum them up. An I/O failure
	// during a layer (reset, close, timeout) is the class, Op "tls" or
	// "app"; RTT stays the TCP connect's time, TLS.Handshake and
	// App.FirstByte are the layers'.
	TLS *TLSResult
	App *app.Result
	Err error // *Error, nil when Class is Open
}

// OK reports whether the endpoint accepted the connection.
func (r Result) OK() bool { return r.Class == Open }

// Error is a failed probe: what was attempted, against what, and why. It
// unwraps to the underlying error (e.g. *net.OpError, syscall.Errno), and
// errors.Is(err, probe.Refused) matches its class.
type Error struct {
	Op    string // "lookup", "dial", "read" (ReadWait), "hold", "tls" or "app"
	Addr  string // host:port as dialled, or the name looked up
	Class Class
	Errno syscall.Errno
	ICMP  *ICMP // the ICMP error behind a failed dial, when one came
	Err   error
}

func (e *Error) Error() string {
	if e.ICMP != nil {
		return fmt.Sprintf("%s %s: %s (%v): %v", e.Op, e.Addr, e.Class, e.ICMP, e.Err)
	}
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
	conn, r := dial(ctx, ep, opt, false)
	if conn != nil {
		conn.Close()
	}
	return r
}

// Dial probes ep once and, when it is open, returns the connection too; the
// caller owns it. A name is resolved first and its first address of the
// wanted family is dialled; Result.Resolved lists them all.
func Dial(ctx context.Context, ep endpoint.Endpoint, opt Options) (net.Conn, Result) {
	return dial(ctx, ep, opt, true)
}

// dial is Dial; without keep, the caller only wants the outcome.
func dial(ctx context.Context, ep endpoint.Endpoint, opt Options, keep bool) (net.Conn, Result) {
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
	conn, rr := dialAddr(ctx, netip.AddrPortFrom(addr, ep.Port), ep, opt, keep)
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
	if ipNet == "ip" && opt.Source.IsValid() {
		// Only the source's family can be reached from it.
		ipNet = map[bool]string{true: "ip4", false: "ip6"}[opt.Source.Unmap().Is4()]
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
	return dialAddr(ctx, ap, endpoint.Endpoint{}, opt, true)
}

// dialAddr probes ap; ep is what the user named, for the layers above TCP
// (the host name TLS verifies and HTTP asks for), zero when unknown.
func dialAddr(ctx context.Context, ap netip.AddrPort, ep endpoint.Endpoint, opt Options, keep bool) (net.Conn, Result) {
	r := Result{Endpoint: endpoint.FromAddrPort(ap), Addr: ap, Resolved: []netip.Addr{ap.Addr()}}
	ctx, cancel := context.WithTimeout(ctx, opt.timeout())
	defer cancel()

	if src := opt.Source.Unmap(); src.IsValid() && src.Is4() != ap.Addr().Unmap().Is4() {
		r.fail("dial", ap.String(), &SourceError{Source: opt.Source, Target: ap.Addr(), Err: ErrSourceFamily})
		return nil, r
	}
	if !keep && opt.Dial == nil && opt.ReadWait <= 0 && opt.Hold <= 0 && opt.TLS == nil && opt.App == nil && sys.CanConnectOnce && familyFits(opt.network(), ap) {
		connectOnce(ctx, ap, opt, &r)
		return nil, r
	}
	dial := opt.Dial
	switch {
	case dial == nil:
		dial = LocalDialer(opt.Source, opt.Interface)
	case opt.Source.IsValid() || opt.Interface != "":
		r.fail("dial", ap.String(), ErrOwnDialer)
		return nil, r
	}
	start := time.Now()
	conn, err := dial(ctx, opt.network(), ap.String())
	r.RTT = time.Since(start)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v: %w", opt.timeout(), err)
		}
		r.failDial(ap, err)
		return nil, r
	}
	if la, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		r.Local = la.AddrPort()
		r.Local = netip.AddrPortFrom(r.Local.Addr().Unmap(), r.Local.Port())
	}
	if r.selfConnect(ap) {
		conn.Close()
		return nil, r
	}
	switch {
	case opt.TLS != nil || opt.App != nil:
		r.Class = Open
		if conn = layers(ctx, conn, ap, ep, opt, &r); conn == nil || !keep {
			if conn != nil {
				conn.Close()
			}
			return nil, r
		}
		return conn, r
	case opt.Hold > 0:
		if err := hold(ctx, conn, opt.Hold, &r); err != nil {
			conn.Close()
			r.fail("hold", ap.String(), err)
			return nil, r
		}
	case opt.ReadWait > 0:
		if err := readWait(ctx, conn, opt.ReadWait, &r); err != nil {
			conn.Close()
			r.fail("read", ap.String(), err)
			return nil, r
		}
	}
	r.Class = Open
	return conn, r
}

// connectOnce probes ap on a socket of its own that it closes (what Run
// needs), the quickest way there is: see sys.ConnectOnce. Its errors read
// as net.Dialer's.
func connectOnce(ctx context.Context, ap netip.AddrPort, opt Options, r *Result) {
	start := time.Now()
	a := sys.ConnectOnce(ctx, ap, opt.Source, opt.Interface)
	r.RTT = time.Since(start)
	if a.Err == nil {
		r.Local = netip.AddrPortFrom(a.Local.Addr().Unmap(), a.Local.Port())
		if !r.selfConnect(ap) {
			r.Class = Open
		}
		return
	}
	var src net.Addr
	if opt.Source.IsValid() {
		src = sourceAddr(opt.Source)
	}
	var err error = &net.OpError{Op: "dial", Net: opt.network(), Source: src, Addr: net.TCPAddrFromAddrPort(ap), Err: a.Err}
	err = &icmpError{icmp: icmpOf(a.ICMP, a.HasICMP), read: a.QueueRead, err: localError(err, opt)}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: %w", opt.timeout(), err)
	}
	r.failDial(ap, err)
}

// LocalDialer returns the DialFunc a probe uses when Options.Dial is nil:
// it leaves from source (when valid) by iface (when not ""), and on Linux
// its sockets queue ICMP errors, which a probe that calls it reports in
// Result.ICMP. It is for code that takes a DialFunc rather than Options,
// such as doctor.Options.Dial. Failing to bind, it returns a *SourceError
// or an *InterfaceError.
func LocalDialer(source netip.Addr, iface string) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		sock := &sys.DialSocket{Device: iface, NoPort: source.IsValid()}
		defer sock.Close()
		d := net.Dialer{Control: sock.Control}
		if source.IsValid() {
			d.LocalAddr = sourceAddr(source)
		}
		conn, err := d.DialContext(ctx, network, address)
		if err != nil {
			ie := &icmpError{read: sock.Reads(), err: localError(err, Options{Source: source, Interface: iface})}
			if ap, perr := netip.ParseAddrPort(address); perr == nil && ie.read {
				ie.icmp = icmpOf(sock.Unreachable(ap.Port()))
			}
			return nil, ie
		}
		if ra, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
			sock.Connected(ra.IP.To4() == nil)
		}
		return conn, nil
	}
}

// icmpError is a failed dial with what the socket's error queue held: the
// ICMP error behind it, or (read, and none) that none came.
type icmpError struct {
	icmp *ICMP
	read bool
	err  error
}

func (e *icmpError) Error() string { return e.err.Error() }
func (e *icmpError) Unwrap() error { return e.err }

func icmpOf(e sys.ExtendedErr, found bool) *ICMP {
	if !found {
		return nil
	}
	return &ICMP{V6: e.Origin == sys.OriginICMP6, Type: e.Type, Code: e.Code, From: e.Offender}
}

// familyFits reports whether network may dial ap; net.Dialer says why not.
func familyFits(network string, ap netip.AddrPort) bool {
	switch network {
	case "tcp4":
		return ap.Addr().Unmap().Is4()
	case "tcp6":
		return ap.Addr().Is6() && !ap.Addr().Is4In6()
	}
	return true
}

func sourceAddr(a netip.Addr) *net.TCPAddr {
	return &net.TCPAddr{IP: a.AsSlice(), Zone: a.Zone()}
}

// selfConnect fails a connection the kernel made to our own socket (see
// ErrSelfConnect); r.Local must be set.
func (r *Result) selfConnect(ap netip.AddrPort) bool {
	if r.Local != ap {
		return false
	}
	r.fail("dial", ap.String(), fmt.Errorf("%w: %w", ErrSelfConnect, syscall.ECONNREFUSED))
	return true
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

// hold keeps the connection until d has passed (or ctx's deadline) and
// returns the peer's reset or close meanwhile, saying when it came.
func hold(ctx context.Context, conn net.Conn, d time.Duration, r *Result) error {
	start := time.Now()
	deadline := start.Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	// Canceling ctx ends the hold at once.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 256)
	for {
		n, err := conn.Read(buf)
		if room := cap(buf) - len(r.Banner); n > 0 && room > 0 {
			r.Banner = append(r.Banner, buf[:min(n, room)]...)
		}
		if err == nil {
			continue
		}
		r.Held = time.Since(start)
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("held %v: %w", r.Held.Round(time.Millisecond), ctx.Err())
		}
		switch c, _ := Classify(err); c {
		case Timeout:
			return nil
		case ClosedByPeer:
			return fmt.Errorf("the peer closed the connection %v after it was accepted: %w", r.Held.Round(time.Millisecond), err)
		case Reset:
			return fmt.Errorf("the peer reset the connection %v after it was accepted: %w", r.Held.Round(time.Millisecond), err)
		}
		return fmt.Errorf("after %v: %w", r.Held.Round(time.Millisecond), err)
	}
}

// failDial fails a dial; when the dialer read the socket's error queue
// (an *icmpError in err), the ICMP error it held decides the class.
func (r *Result) failDial(ap netip.AddrPort, err error) {
	var ie *icmpError
	queue := errors.As(err, &ie) && ie.read
	if queue {
		r.ICMP = ie.icmp
	}
	r.fail("dial", ap.String(), err)
	if queue && r.Errno != 0 {
		// What came, or that nothing did, where Classify can only infer:
		// an IPv6 EACCES without ICMP is this host's prohibit route.
		r.Class = ClassifyErrno(r.Errno, r.ICMP)
		r.Err.(*Error).Class = r.Class
	}
}

func (r *Result) fail(op, addr string, err error) {
	r.Class, r.Errno = Classify(err)
	if r.Class == Open { // a fake dialer returned probe.Open as an error; treat as local
		r.Class = LocalError
	}
	r.Err = &Error{Op: op, Addr: addr, Class: r.Class, Errno: r.Errno, ICMP: r.ICMP, Err: err}
}
