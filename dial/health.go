package dial

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/reach-tools/reach/probe"
)

// Ejection configures passive health checking, modelled on Envoy's outlier
// detection: an endpoint that fails Consecutive times in a row is skipped for
// BaseTime × (times ejected), at most MaxTime. Each success forgives one past
// ejection, so an endpoint that keeps failing stays out longer each time while
// one that recovered is back to the base period after a few successes. The
// health of an address that no dial has had as a candidate (its name stopped
// resolving to it) for twice MaxTime is forgotten.
type Ejection struct {
	Consecutive int           // failures in a row that eject; 0 means 5, negative never ejects
	BaseTime    time.Duration // first ejection period; 0 means 30 s
	MaxTime     time.Duration // longest ejection period; 0 means 300 s
}

// Defaults of the zero Ejection (Envoy's).
const (
	DefaultEjectConsecutive = 5
	DefaultEjectBaseTime    = 30 * time.Second
	DefaultEjectMaxTime     = 300 * time.Second
)

func (e Ejection) consecutive() int {
	if e.Consecutive == 0 {
		return DefaultEjectConsecutive
	}
	return e.Consecutive
}

// period is how long the n-th ejection (from 1) lasts.
func (e Ejection) period(n int) time.Duration {
	base, limit := e.BaseTime, e.MaxTime
	if base <= 0 {
		base = DefaultEjectBaseTime
	}
	if limit <= 0 {
		limit = DefaultEjectMaxTime
	}
	if n > int(limit/base) {
		return max(limit, base)
	}
	return min(base*time.Duration(n), max(limit, base))
}

// health is one address's passive health.
type health struct {
	fails     int       // consecutive failures since the last success or ejection
	ejections int       // past ejections not yet forgiven
	until     time.Time // ejected until then
	lastFail  time.Time
	last      Attempt   // the last failure
	seen      time.Time // last time a dial had it as a candidate (or it was first observed)
}

// countsAgainst reports whether a failure says something about the endpoint:
// our own local errors and cancellations do not.
func countsAgainst(c probe.Class) bool {
	return c != probe.Open && c != probe.Canceled && c != probe.LocalError
}

// observe updates the address's health with an attempt and reports whether
// the attempt ejected it.
func (d *Dialer) observe(a Attempt) bool {
	if !a.Addr.IsValid() || a.Health {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	h := d.health[a.Addr]
	if h == nil {
		h = &health{seen: now}
		d.health[a.Addr] = h
	}
	switch {
	case a.Class == probe.Open:
		h.fails = 0
		h.until = time.Time{}
		h.ejections = max(h.ejections-1, 0)
		if h.ejections == 0 {
			// Nothing left to remember: a long-lived dialer whose names
			// resolve to ever new addresses must not keep them all.
			delete(d.health, a.Addr)
		}
	case countsAgainst(a.Class):
		h.lastFail, h.last = now, a
		if now.Before(h.until) { // already out: tried only because all are
			return false
		}
		h.fails++
		n := d.opt.Eject.consecutive()
		if n > 0 && h.fails >= n {
			h.fails = 0
			h.ejections++
			h.until = now.Add(d.opt.Eject.period(h.ejections))
			return true
		}
	}
	return false
}

// forgetAfter is how long the health of an address no dial has had as a
// candidate is kept: twice the longest ejection.
func (d *Dialer) forgetAfter() time.Duration {
	return 2 * d.opt.Eject.period(math.MaxInt)
}

// touch marks the addresses of a dial's candidates as current and forgets
// the health of addresses no dial has had for forgetAfter: names whose
// addresses change (a Kubernetes headless service, say) must neither grow
// the map without bound nor keep health checks going to addresses that may
// now belong to something else.
func (d *Dialer) touch(cs []candidate) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range cs {
		if h := d.health[c.addr]; h != nil {
			h.seen = now
		}
	}
	d.forgetLocked(now)
}

// forgetLocked drops the health of addresses not seen for forgetAfter; d.mu is held.
func (d *Dialer) forgetLocked(now time.Time) {
	horizon := d.forgetAfter()
	for ap, h := range d.health {
		if now.Sub(h.seen) > horizon {
			delete(d.health, ap)
			d.log.Debug("dial: forgot an address no longer among the candidates",
				"addr", ap, "last_seen", h.seen)
		}
	}
}

// ejected reports whether ap is ejected now, and its last failure.
func (d *Dialer) ejected(ap netip.AddrPort) (bool, Attempt) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.health[ap]
	if h == nil {
		return false, Attempt{}
	}
	return time.Now().Before(h.until), h.last
}

// arrange drops ejected candidates and orders the rest by policy. When every
// candidate is ejected it returns the least recently failed one, so a dial
// always tries something.
func (d *Dialer) arrange(cs []candidate) []candidate {
	now := time.Now()
	healthy := cs[:0:0]
	var fallback candidate
	var oldest time.Time
	d.mu.Lock()
	for _, c := range cs {
		h := d.health[c.addr]
		if h == nil || !now.Before(h.until) {
			healthy = append(healthy, c)
			continue
		}
		if oldest.IsZero() || h.lastFail.Before(oldest) {
			fallback, oldest = c, h.lastFail
		}
	}
	d.mu.Unlock()
	if len(healthy) == 0 {
		return []candidate{fallback}
	}
	d.opt.Policy.arrange(healthy, d.rr.Add(1)-1)
	return healthy
}

// healthLoop probes ejected endpoints every HealthInterval until ctx ends.
func (d *Dialer) healthLoop(ctx context.Context) {
	defer close(d.healthDone)
	t := time.NewTicker(d.opt.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.checkEjected(ctx)
		}
	}
}

// checkEjected probes each ejected address once and returns those that answer.
func (d *Dialer) checkEjected(ctx context.Context) {
	now := time.Now()
	var out []netip.AddrPort
	d.mu.Lock()
	d.forgetLocked(now)
	for ap, h := range d.health {
		if now.Before(h.until) {
			out = append(out, ap)
		}
	}
	d.mu.Unlock()
	opt := d.probeOptions()
	opt.TLS, opt.App = d.opt.HealthLayers.TLS, d.opt.HealthLayers.App
	for _, ap := range out {
		conn, r := probe.DialAddr(ctx, ap, opt)
		if conn != nil {
			conn.Close()
		}
		a := Attempt{Endpoint: r.Endpoint, Addr: ap, Class: r.Class, Errno: r.Errno, RTT: r.RTT,
			Err: r.Err, Health: true}
		if r.Class == probe.Open && !r.Ready() {
			layer, cause, detail := r.Layer()
			a.NotReady = layer + " " + string(cause) + ": " + detail
			d.log.LogAttrs(ctx, slog.LevelInfo, "dial: ejected endpoint accepts connections but is not ready",
				append(a.attrs(), slog.String("layer", layer), slog.String("cause", string(cause)),
					slog.String("detail", detail))...)
		}
		if r.Ready() {
			d.mu.Lock()
			if h := d.health[ap]; h != nil {
				h.until, h.fails = time.Time{}, 0
			}
			d.mu.Unlock()
			d.log.LogAttrs(ctx, slog.LevelInfo, "dial: endpoint returned by health check", a.attrs()...)
		}
		d.report(a)
	}
}

// replayConn hands back bytes read while checking the connection (ReadWait)
// before reading from the connection itself.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes when the underlying connection can.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
