// Package dial connects to one of several TCP endpoints and survives refused,
// dropped and flapping servers: priority failover, round-robin, random or
// RFC 8305-style racing; retry rounds with gRPC's connection-backoff;
// Envoy-style ejection of endpoints that keep failing, with optional active
// health checks; and every attempt classified by package probe, reported to
// a hook and to a slog.Logger.
//
// A Dialer plugs into anything that takes a DialContext-shaped function
// (net/http.Transport, database and cache clients) through its DialNetwork
// method. Wait, reach wait's engine, tries endpoints until they accept
// (every one, or any one) and says of each that never did why not.
package dial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// DefaultAttemptDelay is the stagger between racing attempts (RFC 8305's
// recommended Connection Attempt Delay).
const DefaultAttemptDelay = 250 * time.Millisecond

// Options tune a Dialer. The zero value dials each endpoint once, in order,
// with probe.DefaultTimeout per attempt, and ejects an endpoint after 5
// consecutive failures.
type Options struct {
	// Policy orders the attempts; the zero value is Ordered.
	Policy Policy
	// AttemptDelay is Race's stagger; 0 means DefaultAttemptDelay.
	AttemptDelay time.Duration
	// Timeout bounds each attempt and each name lookup; 0 means
	// probe.DefaultTimeout. The context bounds the whole dial.
	Timeout time.Duration
	// Retries is how many more rounds over the endpoints follow a failed
	// round: 0 none, negative until the context ends.
	Retries int
	// Backoff spaces the rounds; the zero value is gRPC's.
	Backoff Backoff
	// Retryable reports whether a failure of that class lets the dial go on
	// (to the next endpoint or round). A class it rejects ends the dial at
	// once with that failure. Nil means probe.Class.Retryable: refused,
	// timeout, unreachable, dns, reset go on; local-error (EMFILE, ...)
	// and canceled stop.
	Retryable func(probe.Class) bool
	// Eject configures passive health (outlier ejection).
	Eject Ejection
	// HealthInterval, when positive, probes ejected endpoints that often in
	// the background and returns those that answer. Close stops it.
	HealthInterval time.Duration
	// HealthLayers, when set, are what those health checks ask above TCP:
	// a TLS handshake, an application's readiness (probe.Layers makes them
	// from a URL such as postgres://db:5432). An ejected endpoint then
	// returns only once every layer is ready, so a server that accepts
	// connections while it starts up, loads or recovers stays out.
	HealthLayers Layers
	// ReadWait, when positive, waits that long after connecting for the
	// server to reset or close (probe.Options.ReadWait), so a server that
	// accepts and drops connections counts as failed and the dial moves
	// on. Bytes the server sent meanwhile are replayed to the caller.
	ReadWait time.Duration
	// Network is "tcp" (default), "tcp4" or "tcp6".
	Network string
	// Dial makes each connection; nil uses a net.Dialer.
	Dial probe.DialFunc
	// Resolver resolves names; nil uses net.DefaultResolver.
	Resolver *net.Resolver
	// Source and Interface pin where connections leave from: an address
	// of this host, a network interface (probe.Options.Source and
	// Interface; they need Dial to be nil). probe.CheckLocal checks them
	// beforehand; a dial with values this host cannot honour fails at once
	// with a local error (not retried) saying what there is instead.
	Source    netip.Addr
	Interface string
	// OnAttempt, when set, is called after every attempt and lookup. Calls
	// for one dial are never concurrent; calls for concurrent dials are.
	OnAttempt func(Attempt)
	// OnRetry, when set, is called when a round has failed and the dial
	// waits before the next: round is the failed round (from 0) and wait
	// the pause, so a caller can say why nothing happens meanwhile.
	OnRetry func(round int, wait time.Duration)
	// Logger receives a debug record per attempt and a warning per
	// ejection; nil discards.
	Logger *slog.Logger
}

// Dialer dials one of a fixed list of endpoints. It is safe for concurrent
// use; health state is shared by all its dials.
type Dialer struct {
	eps []endpoint.Endpoint
	opt Options
	log *slog.Logger
	rr  atomic.Uint64

	mu     sync.Mutex
	health map[netip.AddrPort]*health

	stopHealth context.CancelFunc
	healthDone chan struct{}
	closeOnce  sync.Once
}

// New returns a Dialer over endpoints; a name among them stands for every
// address it resolves to, looked up on each dial. Call Close when done if
// opt.HealthInterval is set.
func New(endpoints []endpoint.Endpoint, opt Options) *Dialer {
	d := &Dialer{
		eps:    append([]endpoint.Endpoint(nil), endpoints...),
		opt:    opt,
		log:    opt.Logger,
		health: map[netip.AddrPort]*health{},
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if opt.HealthInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		d.stopHealth, d.healthDone = cancel, make(chan struct{})
		go d.healthLoop(ctx)
	}
	return d
}

// Close stops the active health checks. It does not affect connections
// already returned. It is safe to call more than once.
func (d *Dialer) Close() error {
	d.closeOnce.Do(func() {
		if d.stopHealth != nil {
			d.stopHealth()
			<-d.healthDone
		}
	})
	return nil
}

// Endpoints returns the endpoints the Dialer was made with.
func (d *Dialer) Endpoints() []endpoint.Endpoint {
	return append([]endpoint.Endpoint(nil), d.eps...)
}

// DialNetwork has the shape of net.Dialer.DialContext so the Dialer plugs
// into http.Transport.DialContext and database or cache clients. The address
// is ignored: the connection goes to one of the Dialer's endpoints. Network
// must be a TCP network.
func (d *Dialer) DialNetwork(ctx context.Context, network, _ string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return d.DialContext(ctx)
	}
	return nil, fmt.Errorf("dial: network %q not supported; the dialer makes TCP connections", network)
}

// DialContext connects to one of the endpoints, following the policy, retry
// and ejection options, and returns the connection; the caller owns it. On
// failure the error is an *Error listing each endpoint's last class.
func (d *Dialer) DialContext(ctx context.Context) (net.Conn, error) {
	if len(d.eps) == 0 {
		return nil, ErrNoEndpoints
	}
	c := &call{d: d, last: map[string]Attempt{}}
	for round := 0; ; round++ {
		start := time.Now()
		conn, stop := c.round(ctx, round)
		if conn != nil {
			return conn, nil
		}
		if stop || ctx.Err() != nil || (d.opt.Retries >= 0 && round >= d.opt.Retries) {
			return nil, c.err(ctx)
		}
		if wait := d.opt.Backoff.Delay(round) - time.Since(start); wait > 0 {
			if d.opt.OnRetry != nil {
				d.opt.OnRetry(round, wait)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, c.err(ctx)
			case <-t.C:
			}
		}
	}
}

func (d *Dialer) retryable(c probe.Class) bool {
	if d.opt.Retryable != nil {
		return d.opt.Retryable(c)
	}
	return c.Retryable()
}

func (d *Dialer) probeOptions() probe.Options {
	return probe.Options{
		Timeout:   d.opt.Timeout,
		Network:   d.opt.Network,
		Dial:      d.opt.Dial,
		Resolver:  d.opt.Resolver,
		ReadWait:  d.opt.ReadWait,
		Source:    d.opt.Source,
		Interface: d.opt.Interface,
	}
}

func (d *Dialer) attemptDelay() time.Duration {
	if d.opt.AttemptDelay > 0 {
		return d.opt.AttemptDelay
	}
	return DefaultAttemptDelay
}

// candidate is one address to dial, with the endpoint it came from.
type candidate struct {
	ep   endpoint.Endpoint
	addr netip.AddrPort
}

// call is the state of one DialContext.
type call struct {
	d        *Dialer
	attempts int
	order    []string           // endpoint keys in first-seen order
	last     map[string]Attempt // each endpoint's last meaningful attempt
	cands    []candidate        // the last round's addresses, ejected ones included
}

// round makes one pass over the endpoints. stop reports a failure that must
// not be retried.
func (c *call) round(ctx context.Context, round int) (conn net.Conn, stop bool) {
	cands, stop := c.expand(ctx, round)
	if stop || len(cands) == 0 {
		return nil, stop
	}
	c.cands = cands
	cands = c.d.arrange(cands)
	if c.d.opt.Policy == Race {
		return c.race(ctx, cands, round)
	}
	for _, cd := range cands {
		c.attempts++
		conn, a := c.d.try(ctx, cd, round, c.attempts)
		c.record(a)
		if conn != nil {
			return conn, false
		}
		if !c.d.retryable(a.Class) {
			return nil, true
		}
		if ctx.Err() != nil { // the rest would fail without being tried
			return nil, true
		}
	}
	return nil, false
}

// expand resolves names into candidates; a failed lookup is recorded as an
// attempt of that endpoint.
func (c *call) expand(ctx context.Context, round int) ([]candidate, bool) {
	var out []candidate
	seen := map[netip.AddrPort]bool{}
	add := func(ep endpoint.Endpoint, ap netip.AddrPort) {
		if !seen[ap] {
			seen[ap] = true
			out = append(out, candidate{ep, ap})
		}
	}
	for _, ep := range c.d.eps {
		if ctx.Err() != nil {
			return nil, true
		}
		if ap, ok := ep.AddrPort(); ok {
			add(ep, ap)
			continue
		}
		start := time.Now()
		addrs, err := probe.Resolve(ctx, ep.Host, c.d.probeOptions())
		if err != nil {
			c.attempts++
			class, errno := probe.Classify(err)
			a := Attempt{Endpoint: ep, N: c.attempts, Round: round, Class: class, Errno: errno,
				RTT: time.Since(start), Err: err}
			c.record(a)
			if !c.d.retryable(class) {
				return nil, true
			}
			continue
		}
		for _, ip := range interleave(addrs) {
			add(ep, netip.AddrPortFrom(ip, ep.Port))
		}
	}
	c.d.touch(out)
	return out, false
}

// interleave alternates address families, starting with the resolver's
// first choice (RFC 8305 section 4), so a broken IPv6 path costs one attempt
// delay rather than one per IPv6 address.
func interleave(addrs []netip.Addr) []netip.Addr {
	if len(addrs) < 2 {
		return addrs
	}
	var first, second []netip.Addr
	for _, a := range addrs {
		if a.Is4() == addrs[0].Is4() {
			first = append(first, a)
		} else {
			second = append(second, a)
		}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for i := 0; i < len(first) || i < len(second); i++ {
		if i < len(first) {
			out = append(out, first[i])
		}
		if i < len(second) {
			out = append(out, second[i])
		}
	}
	return out
}

// race runs staggered attempts until one connects: the next starts after the
// attempt delay, or at once when the previous fails. Losers are canceled (a
// late connection is closed) and waited for, so nothing outlives the call.
func (c *call) race(ctx context.Context, cands []candidate, round int) (net.Conn, bool) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		conn net.Conn
		a    Attempt
	}
	results := make(chan result, len(cands)) // buffered: attempts never block on send
	var wg sync.WaitGroup
	next, pending := 0, 0
	launch := func() {
		c.attempts++
		cd, n := cands[next], c.attempts
		next++
		pending++
		wg.Go(func() {
			conn, a := c.d.try(rctx, cd, round, n)
			results <- result{conn, a}
		})
	}
	delay := time.NewTimer(c.d.attemptDelay())
	defer delay.Stop()
	launch()

	var winner net.Conn
	stop := false
	for pending > 0 {
		more := winner == nil && !stop && next < len(cands) && ctx.Err() == nil
		var tick <-chan time.Time
		if more {
			tick = delay.C
		}
		select {
		case r := <-results:
			pending--
			switch {
			case winner != nil || stop:
				if r.conn != nil { // connected after the race was decided
					r.conn.Close()
					r.a.Class, r.a.Err = probe.Canceled, errLostRace
				}
				c.record(r.a)
			case r.conn != nil:
				winner = r.conn
				c.record(r.a)
				cancel()
			default:
				c.record(r.a)
				if !c.d.retryable(r.a.Class) {
					stop = true
					cancel()
				} else if more {
					launch()
					delay.Reset(c.d.attemptDelay())
				}
			}
		case <-tick:
			launch()
			delay.Reset(c.d.attemptDelay())
		}
	}
	wg.Wait()
	return winner, stop
}

var errLostRace = errors.New("dial: connected after another endpoint won the race; closed")

// try makes one attempt.
func (d *Dialer) try(ctx context.Context, cd candidate, round, n int) (net.Conn, Attempt) {
	conn, r := probe.DialAddr(ctx, cd.addr, d.probeOptions())
	a := Attempt{Endpoint: cd.ep, Addr: cd.addr, N: n, Round: round, Class: r.Class, Errno: r.Errno,
		RTT: r.RTT}
	if r.Err != nil {
		a.Err = r.Err // keep a nil interface for success
	}
	if conn != nil && len(r.Banner) > 0 {
		conn = &replayConn{Conn: conn, pending: r.Banner}
	}
	return conn, a
}

// record updates health, reports the attempt, and keeps it as the
// endpoint's last unless it says nothing about the endpoint (canceled).
func (c *call) record(a Attempt) {
	a.Ejected = c.d.observe(a)
	key := a.Endpoint.String()
	if a.Addr.IsValid() {
		key = a.Addr.String()
	}
	if _, ok := c.last[key]; !ok {
		c.order = append(c.order, key)
	}
	if prev, ok := c.last[key]; !ok || a.Class != probe.Canceled || prev.Class == probe.Canceled {
		c.last[key] = a
	}
	c.d.report(a)
}

func (d *Dialer) report(a Attempt) {
	if d.opt.OnAttempt != nil {
		d.opt.OnAttempt(a)
	}
	if a.Ejected {
		d.log.LogAttrs(context.Background(), slog.LevelWarn, "dial: endpoint ejected", a.attrs()...)
	} else if d.log.Enabled(context.Background(), slog.LevelDebug) {
		d.log.LogAttrs(context.Background(), slog.LevelDebug, "dial attempt", a.attrs()...)
	}
}

// err builds the failed dial's error: each endpoint's last attempt, in the
// order the endpoints were given.
func (c *call) err(ctx context.Context) error {
	e := &Error{Attempts: c.attempts, Err: ctx.Err()}
	byEndpoint := map[string][]Attempt{}
	add := func(a Attempt) {
		byEndpoint[a.Endpoint.String()] = append(byEndpoint[a.Endpoint.String()], a)
	}
	for _, k := range c.order {
		a := c.last[k]
		if a.Class != probe.Open {
			a.Ejected, _ = c.d.ejected(a.Addr)
			add(a)
		}
	}
	for _, cd := range c.cands { // ejected, so not tried: report what they last did
		if _, tried := c.last[cd.addr.String()]; tried {
			continue
		}
		if out, last := c.d.ejected(cd.addr); out {
			last.Ejected = true
			add(last)
		}
	}
	for _, ep := range c.d.eps {
		e.Last = append(e.Last, byEndpoint[ep.String()]...)
		delete(byEndpoint, ep.String())
	}
	return e
}
