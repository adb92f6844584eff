package scan

import (
	"context"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/probe"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Tunables of the event loop.
const (
	maxWait     = 50 * time.Millisecond  // longest epoll wait, so cancellation is prompt
	fillBatch   = 256                    // launches between checks of the context
	poolSize    = 64                     // refused sockets kept for reuse, per family
	neighMaxAge = 200 * time.Millisecond // how long a neighbour table dump is reused
)

// haveEpoll says EngineEpoll runs here.
const haveEpoll = true

func runEpoll(ctx context.Context, e *engine) error {
	workers := e.opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	conc := e.opt.Concurrency
	if conc <= 0 {
		conc = concurrencyFromLimit()
	}
	if int64(workers) > e.total {
		workers = int(e.total)
	}
	workers = max(1, min(workers, conc))
	var lim *rate.Limiter
	if e.opt.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(e.opt.Rate), max(1, int(e.opt.Rate/100)))
	}
	e.opt.Logger.Debug("scan: start", "hosts", len(e.hosts), "ports", len(e.ports), "workers", workers, "concurrency", conc)
	g, gctx := errgroup.WithContext(ctx)
	for i := range workers {
		share := conc / workers
		if i < conc%workers {
			share++
		}
		g.Go(func() error {
			return e.opt.RunIn(func() error {
				e.scopes.Do(e.lookupScopes)
				w, err := newWorker(e, share, lim)
				if err != nil {
					return err
				}
				defer w.close()
				return w.loop(gctx)
			})
		})
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// concurrencyFromLimit raises the soft RLIMIT_NOFILE to the hard limit and
// leaves a reserve (an eighth, at least 32) for the rest of the program.
func concurrencyFromLimit() int {
	limit, err := sys.RaiseFileLimit()
	if err != nil {
		return 256
	}
	used := 16
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		used = len(ents)
	}
	n := int64(limit) - int64(used) - max(32, int64(limit)/8)
	return int(min(max(n, 1), MaxConcurrency))
}

// flight is one connect in progress, registered with epoll.
type flight struct {
	item
	fd   int
	h    *hostState
	sent time.Time
	done bool
}

// hostQueue holds one host's flights in send order; since they share one
// deadline length, the oldest expires first.
type hostQueue struct {
	h    *hostState
	q    []*flight
	head int
}

type worker struct {
	e        *engine
	lim      *rate.Limiter
	poller   *sys.Poller
	byFD     []*flight
	queues   map[*hostState]*hostQueue
	active   []*hostQueue
	retry    []item // unanswered probes to try again, and pairs taken but not yet launched
	out      batch
	tries    int64
	inflight int
	cap, max int      // current and configured cap on flights
	pool     [6][]int // by poolKind
	conn     sys.Connector
	errq     sys.ErrQueue
	backoff  time.Duration
	busy     time.Time // when sockets last ran out with nothing in flight; zero if not
	wake     time.Time // do not launch before this (backoff or rate limit)
	drained  bool      // the shared pair list is used up
	neigh    map[netip.Addr]uint16
	neighAt  time.Time
}

func newWorker(e *engine, conc int, lim *rate.Limiter) (*worker, error) {
	p, errno := sys.NewPoller(1024)
	if errno != 0 {
		return nil, &ResourceError{Errno: errno}
	}
	return &worker{e: e, lim: lim, poller: p, queues: map[*hostState]*hostQueue{},
		cap: max(1, conc), max: max(1, conc), out: batch{e: e}}, nil
}

func (w *worker) close() {
	w.out.flush()
	w.e.tries.Add(w.tries)
	for _, q := range w.active {
		for _, f := range q.q[q.head:] {
			if !f.done {
				w.drop(f)
			}
		}
	}
	for _, p := range w.pool {
		for _, fd := range p {
			sys.Close(fd)
		}
	}
	w.poller.Close()
}

func (w *worker) loop(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.fill(ctx); err != nil {
			return err
		}
		wait := w.sweep(time.Now())
		w.out.flush()
		if w.inflight == 0 && w.drained && len(w.retry) == 0 {
			return nil
		}
		if !w.wake.IsZero() {
			wait = min(wait, max(0, time.Until(w.wake)))
		} else if w.inflight < w.cap && (!w.drained || len(w.retry) > 0) {
			wait = 0
		}
		ready, err := w.poller.Wait(min(wait, maxWait))
		if err != nil {
			return err
		}
		for _, r := range ready {
			w.ready(r)
		}
		w.sweep(time.Now())
	}
}

// fill launches probes until the cap, the rate limit or the work runs out.
func (w *worker) fill(ctx context.Context) error {
	if !w.wake.IsZero() {
		if time.Now().Before(w.wake) {
			return nil
		}
		w.wake = time.Time{}
	}
	for n := 0; w.inflight < w.cap; n++ {
		if n%fillBatch == fillBatch-1 && ctx.Err() != nil {
			return nil
		}
		var it item
		if k := len(w.retry); k > 0 {
			it = w.retry[k-1]
			w.retry = w.retry[:k-1]
		} else if w.drained {
			return nil
		} else if w.retry = w.e.take(w.retry); len(w.retry) > 0 {
			slices.Reverse(w.retry) // retry is a stack; keep the shared order
			continue
		} else {
			w.drained = true
			return nil
		}
		if w.lim != nil {
			now := time.Now()
			if r := w.lim.ReserveN(now, 1); r.DelayFrom(now) > 0 {
				r.CancelAt(now)
				w.retry = append(w.retry, it)
				w.wake = now.Add(max(time.Millisecond, time.Duration(float64(time.Second)/w.e.opt.Rate)))
				return nil
			}
		}
		errno := w.launch(it)
		if errno == 0 {
			w.backoff, w.busy = 0, time.Time{}
			continue
		}
		// Out of descriptors or ports: never a port state. Put the pair back,
		// shrink the cap to what fits, and wait for flights to end.
		w.retry = append(w.retry, it)
		w.cap = max(1, w.inflight)
		w.e.opt.Logger.Debug("scan: out of sockets, slowing down", "errno", errno, "inflight", w.inflight)
		if w.inflight > 0 {
			return nil
		}
		now := time.Now()
		if w.busy.IsZero() {
			w.busy = now
		} else if now.Sub(w.busy) > busyGiveUp {
			return &ResourceError{Errno: errno, Wait: now.Sub(w.busy).Round(time.Millisecond)}
		}
		w.backoff = min(max(2*w.backoff, busyBackoff0), busyBackoffN)
		w.wake = now.Add(w.backoff)
		return nil
	}
	return nil
}

// connect is connect(2) to h:port.
func (w *worker) connect(fd int, h *hostState, port uint16) syscall.Errno {
	return w.conn.Connect(fd, h.Addr, port, h.scope)
}

// poolKind sorts sockets by family, and loopback targets apart: their
// sockets are bound to a fixed loopback source port, and block in connect
// (see blocking) unless the host has been slow to answer.
func poolKind(h *hostState) int {
	k := 0
	if h.Addr.Is6() {
		k = 1
	}
	if h.Addr.IsLoopback() {
		k += 2
		if h.slow.Load() {
			k += 2
		}
	}
	return k
}

// blocking reports sockets whose connect waits (at most blockingWait) for
// the answer. On loopback the answer comes inside connect() itself, so one
// blocking call decides a port where a non-blocking socket needs a second
// connect() to collect it: about a tenth less kernel time per port.
func blocking(kind int) bool { return kind == 2 || kind == 3 }

// blockingWait bounds a blocking loopback connect; the kernel rounds it up
// to one clock tick. A host that makes a connect wait this long is marked
// slow and probed without blocking from then on.
const blockingWait = time.Microsecond

// socket returns a fresh socket of the kind poolKind gave for h, or one of
// that kind whose last connect was refused (connecting again on it skips
// socket() and close()). Sockets queue ICMP errors, so admin-prohibited can
// be told from host-unreachable. bound says the errno is a failure to bind
// the socket to Options.Source or Options.Interface.
func (w *worker) socket(h *hostState, kind int) (fd int, errno syscall.Errno, bound bool) {
	if p := w.pool[kind]; len(p) > 0 {
		fd := p[len(p)-1]
		w.pool[kind] = p[:len(p)-1]
		return fd, 0, false
	}
	var wait time.Duration
	if blocking(kind) {
		wait = blockingWait
	}
	fd, errno = sys.NewTCPSocket(h.Addr.Is6(), wait)
	if errno != 0 {
		return -1, errno, false
	}
	// Bound before connect, and kept bound while the socket is reused.
	// Scan checked both first; failing now, the interface or address went
	// away mid-scan, and no wait brings them back (bind's EADDRNOTAVAIL
	// is not a shortage of ports: no port is picked before connect).
	if name := w.e.opt.Interface; name != "" {
		if errno := sys.BindDevice(fd, name); errno != 0 {
			sys.Close(fd)
			return -1, errno, true
		}
	}
	if src := w.e.opt.Source; src.IsValid() {
		if errno := sys.BindSource(fd, src.Unmap()); errno != 0 {
			sys.Close(fd)
			return -1, errno, true
		}
		return fd, 0, false
	}
	if h.Addr.IsLoopback() {
		// A port the program chose stays bound when a connect is refused,
		// so reconnecting skips the kernel's search for an ephemeral port:
		// about a sixth less kernel time per port on loopback. Scanning
		// that port finds the socket connected to itself: closed, as it
		// is. Failure leaves fd unbound, which only costs speed.
		sys.BindLoopbackPort(fd, h.Addr.Is6())
	}
	return fd, 0, false
}

// launch starts one probe. On loopback and other local paths the kernel
// answers inside connect(); a second connect() collects that answer without
// epoll. It returns a non-zero errno only when the pair must be retried
// because this host ran short of something.
func (w *worker) launch(it item) syscall.Errno {
	e := w.e
	h := e.hosts[it.host]
	if h.status.Load() == statusDown {
		w.out.skip()
		return 0
	}
	// The kind is read once: another loop may mark the host slow meanwhile,
	// and the socket must go back to the pool it came from.
	kind := poolKind(h)
	block := blocking(kind)
	fd, errno, bound := w.socket(h, kind)
	if errno != 0 {
		if busyErrno(errno) && !bound {
			return errno
		}
		v := classify(errno, nil, true)
		if bound {
			v.evidence = "bind to the source address or interface: " + errno.Error()
		}
		w.out.decide(h, it, v, 0)
		return 0
	}
	start := time.Now()
	w.tries++
	errno = w.connect(fd, h, it.port)
	if block && (errno == syscall.EINPROGRESS || errno == syscall.EINTR) {
		// Still connecting after the wait (or a signal cut it short): the
		// socket goes on without blocking, watched by epoll like any other.
		if errno == syscall.EINPROGRESS {
			h.slow.Store(true)
		}
		if errno := sys.SetNonblock(fd); errno != 0 {
			sys.Close(fd)
			return errno
		}
		errno = syscall.EINPROGRESS
	} else if errno == syscall.EINPROGRESS {
		errno = w.connect(fd, h, it.port)
	}
	switch errno {
	case 0, syscall.EISCONN:
		w.connected(fd, h, it, time.Since(start))
		return 0
	case syscall.ECONNREFUSED:
		// Refused inside connect(): a reset on a local path, no ICMP to read.
		w.out.decide(h, it, classify(syscall.ECONNREFUSED, nil, true), time.Since(start))
		w.recycle(fd, kind)
		return 0
	case syscall.EALREADY, syscall.EINPROGRESS:
		if errno := w.poller.Add(fd); errno != 0 {
			sys.Close(fd)
			return errno
		}
		w.track(&flight{item: it, fd: fd, h: h, sent: start})
		return 0
	}
	sys.Close(fd)
	if busyErrno(errno) {
		w.tries--
		return errno
	}
	w.out.decide(h, it, classify(errno, nil, true), time.Since(start))
	return 0
}

// recycle keeps a refused socket for the next connect, or closes it.
func (w *worker) recycle(fd int, kind int) {
	if len(w.pool[kind]) < poolSize {
		w.pool[kind] = append(w.pool[kind], fd)
		return
	}
	sys.Close(fd)
}

// connected decides a completed handshake and closes the socket with a reset
// (no TIME_WAIT left behind). A loopback connect to a port in the ephemeral
// range can pick that very port as its source and connect to itself: then
// nothing listens there and the port is closed.
func (w *worker) connected(fd int, h *hostState, it item, rtt time.Duration) {
	v := vOpen
	if la, ok := sys.LocalAddr(fd); ok && la == netip.AddrPortFrom(h.Addr.WithZone(""), it.port) {
		v = vSelfConnect
	}
	sys.CloseReset(fd)
	w.out.decide(h, it, v, rtt)
}

// icmp returns the latest ICMP destination-unreachable queued on fd about
// a probe to port, nil if none.
func (w *worker) icmp(fd int, h *hostState, port uint16) *icmpInfo {
	e, ok := w.errq.Unreachable(fd, port)
	if !ok {
		return nil
	}
	return &icmpInfo{ICMP: probe.ICMP{V6: e.Origin == sys.OriginICMP6, Type: e.Type, Code: e.Code, From: e.Offender},
		fromTarget: e.Offender == h.Addr.WithZone("")}
}

func (w *worker) track(f *flight) {
	for f.fd >= len(w.byFD) {
		w.byFD = append(w.byFD, make([]*flight, len(w.byFD)+64)...)
	}
	w.byFD[f.fd] = f
	q := w.queues[f.h]
	if q == nil {
		q = &hostQueue{h: f.h}
		w.queues[f.h] = q
		w.active = append(w.active, q)
	}
	q.q = append(q.q, f)
	w.inflight++
}

// finish forgets a decided flight; the caller has closed or will close fd.
func (w *worker) finish(f *flight) {
	f.done = true
	w.byFD[f.fd] = nil
	w.inflight--
	if w.cap < w.max {
		w.cap++ // additive increase after a shortage
	}
}

// drop closes a flight without a result (host down, or shutting down).
func (w *worker) drop(f *flight) {
	sys.Close(f.fd)
	w.finish(f)
}

// ready handles an epoll event: the connect finished one way or another.
func (w *worker) ready(r sys.Ready) {
	if r.FD >= len(w.byFD) || w.byFD[r.FD] == nil {
		return
	}
	f := w.byFD[r.FD]
	if !w.settle(f, time.Since(f.sent)) && r.Err {
		w.icmp(r.FD, f.h, f.port) // a stale queued error; drain it so the event stops
	}
}

// settle decides a flight from the socket's state; it reports false if the
// connect is still in progress.
func (w *worker) settle(f *flight, rtt time.Duration) bool {
	errno := sys.SocketError(f.fd)
	if errno == 0 {
		// No error: connected, or (for a deadline check) still trying.
		switch errno = w.connect(f.fd, f.h, f.port); errno {
		case 0, syscall.EISCONN:
			w.finish(f)
			w.connected(f.fd, f.h, f.item, rtt)
			return true
		case syscall.EALREADY, syscall.EINPROGRESS:
			return false
		}
	}
	info := w.icmp(f.fd, f.h, f.port)
	w.drop(f)
	if f.h.status.Load() == statusDown {
		w.out.skip()
		return true
	}
	w.out.decide(f.h, f.item, classify(errno, info, false), rtt)
	return true
}

// sweep expires flights past their host's deadline and returns the time
// until the next deadline. Before expiring a flight it asks the socket once
// more, so an answer that arrived while we were busy is never lost.
func (w *worker) sweep(now time.Time) time.Duration {
	next := maxWait
	keep := w.active[:0]
	for _, q := range w.active {
		h := q.h
		down := h.status.Load() == statusDown
		tmo := w.e.timeout(h)
		for q.head < len(q.q) {
			f := q.q[q.head]
			if f.done {
				q.q[q.head] = nil
				q.head++
				continue
			}
			if down {
				w.drop(f)
				w.out.skip()
				continue
			}
			age := now.Sub(f.sent)
			if age < tmo {
				next = min(next, tmo-age)
				if h.status.Load() == statusUnconfirmed {
					// Another loop may see the host answer and shorten
					// its deadline; look again soon.
					next = min(next, unconfirmedPoll)
				}
				break
			}
			if w.settle(f, age) {
				continue
			}
			w.drop(f)
			if h.status.Load() == statusUnconfirmed && w.unresolved(h) {
				w.out.skip()
			} else {
				w.expire(h, f.item, age)
			}
			down = h.status.Load() == statusDown
			tmo = w.e.timeout(h)
		}
		if q.head == len(q.q) {
			delete(w.queues, h)
			continue
		}
		if q.head > 1024 && q.head > len(q.q)/2 {
			q.q = append(q.q[:0], q.q[q.head:]...)
			q.head = 0
		}
		keep = append(keep, q)
	}
	clear(w.active[len(keep):])
	w.active = keep
	return next
}

// expire handles a probe nothing answered: try again or call it filtered.
func (w *worker) expire(h *hostState, it item, age time.Duration) {
	e := w.e
	e.silent(h)
	if e.retry(it) {
		it.tries++
		w.retry = append(w.retry, it)
		return
	}
	w.out.decide(h, it, vNoResponse, age)
}

// unresolved checks, when a probe to a host that never answered expires,
// whether the host failed address resolution (no ARP/ND reply). The kernel
// reports that with ICMP errors too, but it rate-limits them (about 1000 a
// second for the whole namespace), so with many dead hosts most are lost;
// the neighbour table keeps the verdict.
func (w *worker) unresolved(h *hostState) bool {
	if time.Since(w.neighAt) > neighMaxAge {
		w.neigh = map[netip.Addr]uint16{}
		w.neighAt = time.Now()
		// Failing to read the table only loses the shortcut.
		sys.Neighbours(context.Background(), func(a netip.Addr, st uint16) { w.neigh[a] = st })
	}
	st, ok := w.neigh[h.Addr.WithZone("")]
	if !ok || st&(sys.NeighFailed|sys.NeighIncomplete) == 0 {
		return false
	}
	what := map[bool]string{true: "ARP", false: "neighbour solicitation"}[h.Addr.Is4()]
	return w.e.hostDown(h, verdict{host: HostUnreachable, reason: ReasonHostUnreach, class: probe.HostUnreachable,
		evidence: "no reply to " + what + " (neighbour entry " + map[bool]string{true: "FAILED", false: "INCOMPLETE"}[st&sys.NeighFailed != 0] + ")"})
}
