package scan

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/probe"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Tunables of the event loop.
const (
	maxWait         = 50 * time.Millisecond  // longest epoll wait, so cancellation is prompt
	fillBatch       = 256                    // launches between checks of the context
	poolSize        = 64                     // refused sockets kept for reuse, per family
	busyBackoff0    = 5 * time.Millisecond   // first wait after EMFILE and friends, doubling
	busyBackoffN    = time.Second            // longest such wait
	busyGiveUp      = 10 * time.Second       // EMFILE with nothing in flight this long ends the scan
	neighMaxAge     = 200 * time.Millisecond // how long a neighbour table dump is reused
	unconfirmedPoll = 5 * time.Millisecond   // sweep period while a host has not answered yet
)

func run(ctx context.Context, e *engine) error {
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
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 256
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	used := 16
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		used = len(ents)
	}
	n := int64(lim.Cur) - int64(used) - max(32, int64(lim.Cur)/8)
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
	epfd     int
	events   []unix.EpollEvent
	byFD     []*flight
	queues   map[*hostState]*hostQueue
	active   []*hostQueue
	retry    []item // unanswered probes to try again, and pairs taken but not yet launched
	out      batch
	tries    int64
	inflight int
	cap, max int      // current and configured cap on flights
	pool     [6][]int // by poolKind
	raw4     unix.RawSockaddrInet4
	raw6     unix.RawSockaddrInet6
	errBuf   [512]byte
	oobBuf   [512]byte
	backoff  time.Duration
	busy     time.Time // when sockets last ran out with nothing in flight; zero if not
	wake     time.Time // do not launch before this (backoff or rate limit)
	drained  bool      // the shared pair list is used up
	neigh    map[netip.Addr]uint16
	neighAt  time.Time
}

func newWorker(e *engine, conc int, lim *rate.Limiter) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, &ResourceError{Errno: errnoOf(err)}
	}
	return &worker{e: e, lim: lim, epfd: epfd, events: make([]unix.EpollEvent, 1024),
		queues: map[*hostState]*hostQueue{}, cap: max(1, conc), max: max(1, conc), out: batch{e: e}}, nil
}

func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	errors.As(err, &en)
	return en
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
			unix.Close(fd)
		}
	}
	unix.Close(w.epfd)
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
		ms := (min(wait, maxWait) + time.Millisecond - 1) / time.Millisecond
		n, err := unix.EpollWait(w.epfd, w.events, int(ms))
		if err != nil && err != unix.EINTR {
			return err
		}
		for _, ev := range w.events[:max(n, 0)] {
			w.ready(int(ev.Fd), ev.Events)
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

// connect is connect(2) to h:port, made as a raw system call: without the
// Go scheduler's bookkeeping. A connect here never waits long (sockets are
// non-blocking, or blocking for at most one clock tick), and announcing each
// of the scan's tens of thousands of calls lets the runtime's monitor thread
// hand the event loop's P to another thread mid-call: a thread wake-up and a
// pair of context switches, every few hundred microseconds on each core.
func (w *worker) connect(fd int, h *hostState, port uint16) error {
	ptr, size := unsafe.Pointer(&w.raw4), unsafe.Sizeof(w.raw4)
	if h.Addr.Is4() {
		w.raw4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: h.Addr.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&w.raw4.Port))[:], port)
	} else {
		w.raw6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: h.Addr.As16(), Scope_id: h.scope}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&w.raw6.Port))[:], port)
		ptr, size = unsafe.Pointer(&w.raw6), unsafe.Sizeof(w.raw6)
	}
	if _, _, errno := syscall.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(ptr), size); errno != 0 {
		return errno
	}
	return nil
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
// socket() and close()).
func (w *worker) socket(h *hostState, kind int) (int, syscall.Errno) {
	if p := w.pool[kind]; len(p) > 0 {
		fd := p[len(p)-1]
		w.pool[kind] = p[:len(p)-1]
		return fd, 0
	}
	domain := unix.AF_INET
	if h.Addr.Is6() {
		domain = unix.AF_INET6
	}
	flags := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
	if !blocking(kind) {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(domain, flags, 0)
	if err != nil {
		return -1, errnoOf(err)
	}
	if blocking(kind) {
		tv := unix.NsecToTimeval(blockingWait.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			unix.Close(fd)
			return -1, errnoOf(err)
		}
	}
	// Queue ICMP errors so we can tell admin-prohibited from host-unreachable.
	if domain == unix.AF_INET {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
	} else {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
	}
	if h.Addr.IsLoopback() {
		bindSourcePort(fd, domain)
	}
	return fd, 0
}

// bindSourcePort binds a loopback socket to an explicit free port. A port
// the program chose stays bound when a connect is refused, so reconnecting
// skips the kernel's search for an ephemeral port: about a sixth less kernel
// time per port on loopback. The port comes from a scratch socket's
// automatic bind; no SO_REUSEADDR, so nothing can listen on it meanwhile
// (scanning it finds the socket connected to itself: closed, as it is).
// Failure leaves fd unbound, which only costs speed.
func bindSourcePort(fd, domain int) {
	var lo unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if domain == unix.AF_INET6 {
		lo = &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16()}
	}
	tmp, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	err = unix.Bind(tmp, lo)
	sa, serr := unix.Getsockname(tmp)
	unix.Close(tmp)
	if err != nil || serr != nil {
		return
	}
	unix.Bind(fd, sa)
}

// busyErrno reports errors that mean this host is short of a resource.
func busyErrno(e syscall.Errno) bool {
	switch e {
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.EADDRNOTAVAIL, unix.EAGAIN, unix.EINTR:
		return true
	}
	return false
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
	fd, errno := w.socket(h, kind)
	if errno != 0 {
		if busyErrno(errno) {
			return errno
		}
		w.out.decide(h, it, classify(errno, nil, true), 0)
		return 0
	}
	start := time.Now()
	w.tries++
	err := w.connect(fd, h, it.port)
	if block && (err == unix.EINPROGRESS || err == unix.EINTR) {
		// Still connecting after the wait (or a signal cut it short): the
		// socket goes on without blocking, watched by epoll like any other.
		if err == unix.EINPROGRESS {
			h.slow.Store(true)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return errnoOf(err)
		}
		err = unix.EINPROGRESS
	} else if err == unix.EINPROGRESS {
		err = w.connect(fd, h, it.port)
	}
	switch err {
	case nil, unix.EISCONN:
		w.connected(fd, h, it, time.Since(start))
		return 0
	case unix.ECONNREFUSED:
		// Refused inside connect(): a reset on a local path, no ICMP to read.
		w.out.decide(h, it, classify(unix.ECONNREFUSED, nil, true), time.Since(start))
		w.recycle(fd, kind)
		return 0
	case unix.EALREADY, unix.EINPROGRESS:
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd)}); err != nil {
			unix.Close(fd)
			return errnoOf(err)
		}
		w.track(&flight{item: it, fd: fd, h: h, sent: start})
		return 0
	}
	unix.Close(fd)
	errno = errnoOf(err)
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
	unix.Close(fd)
}

// connected decides a completed handshake and closes the socket with a reset
// (no TIME_WAIT left behind). A loopback connect to a port in the ephemeral
// range can pick that very port as its source and connect to itself: then
// nothing listens there and the port is closed.
func (w *worker) connected(fd int, h *hostState, it item, rtt time.Duration) {
	v := vOpen
	if la, err := unix.Getsockname(fd); err == nil && sameAddrPort(la, h, it.port) {
		v = vSelfConnect
	}
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
	w.out.decide(h, it, v, rtt)
}

func sameAddrPort(sa unix.Sockaddr, h *hostState, port uint16) bool {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port == int(port) && h.Addr.Is4() && a.Addr == h.Addr.As4()
	case *unix.SockaddrInet6:
		return a.Port == int(port) && h.Addr.Is6() && a.Addr == h.Addr.As16()
	}
	return false
}

// icmp reads the socket's error queue and returns the latest ICMP
// destination-unreachable in it about a probe to port, nil if none. A
// reused socket may still hold an error about the port it probed before;
// the TCP header the error quotes tells them apart.
func (w *worker) icmp(fd int, h *hostState, port uint16) *icmpInfo {
	var last *icmpInfo
	for range 16 {
		n, oobn, _, _, err := unix.Recvmsg(fd, w.errBuf[:], w.oobBuf[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			break
		}
		if n >= 4 && binary.BigEndian.Uint16(w.errBuf[2:4]) != port {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(w.oobBuf[:oobn])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if (m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) ||
				(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
				if in, ok := parseExtendedErr(m.Data); ok {
					in.fromTarget = in.From == h.Addr.WithZone("")
					last = &in
				}
			}
		}
	}
	return last
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
	unix.Close(f.fd)
	w.finish(f)
}

// ready handles an epoll event: the connect finished one way or another.
func (w *worker) ready(fd int, events uint32) {
	if fd >= len(w.byFD) || w.byFD[fd] == nil {
		return
	}
	f := w.byFD[fd]
	if !w.settle(f, time.Since(f.sent)) && events&unix.EPOLLERR != 0 {
		w.icmp(fd, f.h, f.port) // a stale queued error; drain it so the event stops
	}
}

// settle decides a flight from the socket's state; it reports false if the
// connect is still in progress.
func (w *worker) settle(f *flight, rtt time.Duration) bool {
	soerr, err := unix.GetsockoptInt(f.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soerr == 0 {
		// No error: connected, or (for a deadline check) still trying.
		switch cerr := w.connect(f.fd, f.h, f.port); cerr {
		case nil, unix.EISCONN:
			w.finish(f)
			w.connected(f.fd, f.h, f.item, rtt)
			return true
		case unix.EALREADY, unix.EINPROGRESS:
			return false
		default:
			soerr = int(errnoOf(cerr))
		}
	}
	if err != nil {
		soerr = int(errnoOf(err))
	}
	errno := syscall.Errno(soerr)
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
		// AF_UNSPEC: every family. Failing to read the table only loses the shortcut.
		sys.NetlinkDump(context.Background(), unix.NETLINK_ROUTE, unix.RTM_GETNEIGH, make([]byte, ndmsgLen), func(m sys.NetlinkMessage) error {
			if a, st, ok := parseNeigh(m.Data); ok {
				w.neigh[a] = st
			}
			return nil
		})
	}
	st, ok := w.neigh[h.Addr.WithZone("")]
	if !ok || st&(nudFailed|nudIncomplete) == 0 {
		return false
	}
	what := map[bool]string{true: "ARP", false: "neighbour solicitation"}[h.Addr.Is4()]
	return w.e.hostDown(h, verdict{host: HostUnreachable, reason: ReasonHostUnreach, class: probe.HostUnreachable,
		evidence: "no reply to " + what + " (neighbour entry " + map[bool]string{true: "FAILED", false: "INCOMPLETE"}[st&nudFailed != 0] + ")"})
}
