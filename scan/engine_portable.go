package scan

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/probe"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Engine names a way of running a scan's connects.
type Engine string

// The engines. Both decide ports the same way (the states, reasons and
// adaptive deadlines of the package doc); they differ in how they wait.
const (
	// EngineDefault is EngineEpoll on Linux and EnginePortable elsewhere.
	EngineDefault Engine = ""
	// EngineEpoll runs one event loop per CPU over non-blocking sockets
	// (Linux only): the fastest, and the one that reads a socket's answer
	// the moment it comes.
	EngineEpoll Engine = "epoll"
	// EnginePortable runs each connect as a net.Dialer call on a goroutine
	// of its own, at most Options.Concurrency at a time: it works on every
	// system Go runs on (macOS, Windows), and on Linux, where it still reads
	// the ICMP error behind a failed connect, it is selectable so that the
	// lab's exactness tests prove it too.
	EnginePortable Engine = "portable"
)

// Tunables both engines share.
const (
	busyBackoff0    = 5 * time.Millisecond // first wait after EMFILE and friends, doubling
	busyBackoffN    = time.Second          // longest such wait
	busyGiveUp      = 10 * time.Second     // EMFILE with nothing in flight this long ends the scan
	unconfirmedPoll = 5 * time.Millisecond // look period while a host has not answered yet
)

// busyErrno reports errors that mean this host is short of a resource.
func busyErrno(e syscall.Errno) bool {
	switch e {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL, syscall.EAGAIN, syscall.EINTR:
		return true
	}
	return false
}

// portableMinTimeout is the portable engine's floor under
// Options.MinTimeout: the answer to a connect reaches its goroutine only
// when the scheduler runs it, which on a loaded machine takes tens of
// milliseconds, and a deadline cannot ask the socket first as the epoll
// engine's sweep does.
const portableMinTimeout = 250 * time.Millisecond

// portableConcurrency caps the portable engine's goroutines when
// Options.Concurrency is 0: each holds a socket and, under Options.RunIn,
// an OS thread. Linux's loopback queues packets per CPU up to
// net.core.netdev_max_backlog (1000) and drops the rest: 1024 connects at
// once lost SYNs (resent after a second, past the deadline), and 11 to 70
// closed ports of 65,535 came out filtered; at 256 none did, and the scan
// was faster (11.3 s against 17.1 s).
const portableConcurrency = 256

// lastTryFloor is the least a port's last try waits. A SYN lost on the way
// (a loopback queue overflowing on a loaded machine) is sent again by the
// kernel after its first retransmission timeout, one second on Linux and
// macOS: the last try waits for that resend's answer rather than call an
// open or closed port filtered.
const lastTryFloor = 1500 * time.Millisecond

func run(ctx context.Context, e *engine) error {
	switch e.opt.Engine {
	case EnginePortable:
		return runPortable(ctx, e)
	case EngineEpoll:
		if !haveEpoll {
			return ErrUnsupported
		}
	case EngineDefault:
		if !haveEpoll {
			return runPortable(ctx, e)
		}
	default:
		return errors.New("scan: unknown engine " + string(e.opt.Engine) + " (epoll or portable)")
	}
	return runEpoll(ctx, e)
}

// runPortable probes with net.Dialer: one goroutine per connect in flight,
// each taking pairs from the shared list. Under RunIn each goroutine runs
// inside it (a namespace's Do locks the goroutine to a thread there, where
// the dial creates its socket).
func runPortable(ctx context.Context, e *engine) error {
	conc := e.opt.Concurrency
	if conc <= 0 {
		conc = portableConcurrency
		// Go raises the soft limit to the hard one at start on Unix.
		if limit, _, err := sys.FileLimit(); err == nil {
			conc = int(min(uint64(conc), max(1, limit-max(32, limit/8))))
		}
	}
	conc = int(max(1, min(int64(conc), e.total)))
	var lim *rate.Limiter
	if e.opt.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(e.opt.Rate), max(1, int(e.opt.Rate/100)))
	}
	if e.opt.MinTimeout < portableMinTimeout {
		e.opt.MinTimeout = min(portableMinTimeout, e.opt.Timeout)
	}
	e.opt.Logger.Debug("scan: start", "engine", EnginePortable, "hosts", len(e.hosts), "ports", len(e.ports), "concurrency", conc)
	g, gctx := errgroup.WithContext(ctx)
	for range conc {
		g.Go(func() error {
			return e.opt.RunIn(func() error {
				d := &dialer{e: e, lim: lim, out: batch{e: e}}
				defer d.close()
				return d.loop(gctx)
			})
		})
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// dialer is one of the portable engine's goroutines.
type dialer struct {
	e       *engine
	lim     *rate.Limiter
	out     batch
	retry   []item
	tries   int64
	backoff time.Duration
	busy    time.Time
}

func (d *dialer) close() {
	d.out.flush()
	d.e.tries.Add(d.tries)
}

func (d *dialer) loop(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// One pair at a time: a goroutine holds one connect, and a chunk
		// would leave the others idle on a small scan.
		if len(d.retry) == 0 {
			if d.retry = d.e.takeN(d.retry, 1); len(d.retry) == 0 {
				return nil
			}
		}
		it := d.retry[len(d.retry)-1]
		d.retry = d.retry[:len(d.retry)-1]
		if d.lim != nil {
			if err := d.lim.Wait(ctx); err != nil {
				d.retry = append(d.retry, it)
				return ctx.Err()
			}
		}
		if errno := d.probe(ctx, it); errno != 0 {
			// Out of descriptors or ports: never a port state. Put the
			// pair back and wait, doubling, while the others finish.
			d.retry = append(d.retry, it)
			d.e.opt.Logger.Debug("scan: out of sockets, slowing down", "errno", errno)
			now := time.Now()
			if d.busy.IsZero() {
				d.busy = now
			} else if now.Sub(d.busy) > busyGiveUp {
				return &ResourceError{Errno: errno, Wait: now.Sub(d.busy).Round(time.Millisecond)}
			}
			d.backoff = min(max(2*d.backoff, busyBackoff0), busyBackoffN)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d.backoff):
			}
			continue
		}
		d.backoff, d.busy = 0, time.Time{}
		d.out.flush() // results as they come: OnPort and progress see them
	}
}

// probe dials one pair and decides it. It returns a non-zero errno only
// when the pair must be tried again because this host ran short.
func (d *dialer) probe(ctx context.Context, it item) syscall.Errno {
	e := d.e
	h := e.hosts[it.host]
	if h.status.Load() == statusDown {
		d.out.skip()
		return 0
	}
	target := netip.AddrPortFrom(h.Addr, it.port)
	sock := &sys.DialSocket{Device: e.opt.Interface, NoPort: e.opt.Source.IsValid()}
	defer sock.Close()
	// The socket, and when it was made (just before connect), for
	// deadline: time the goroutine waited before it is not the host's.
	var dial dialing
	nd := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		dial.raw.Store(&c)
		dial.start.Store(time.Now().UnixNano())
		return sock.Control(network, address, c)
	}}
	if src := e.opt.Source; src.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: src.Unmap().AsSlice()}
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var floor time.Duration
	if !e.retry(it) {
		floor = min(lastTryFloor, e.opt.Timeout) // never past what the user allows a probe
	}
	stop := d.deadline(h, &dial, floor, cancel)
	d.tries++
	conn, err := nd.DialContext(dctx, "tcp", target.String())
	rtt := time.Since(start)
	stop()
	expired := dctx.Err() != nil && ctx.Err() == nil
	if ctx.Err() != nil {
		if conn != nil {
			conn.Close()
		}
		d.tries--
		d.retry = append(d.retry, it) // undecided; the report leaves it out
		return 0
	}
	if err == nil {
		v := vOpen
		if la, ok := conn.LocalAddr().(*net.TCPAddr); ok && la.AddrPort() == netip.AddrPortFrom(h.Addr.WithZone(""), it.port) {
			v = vSelfConnect
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset: no TIME_WAIT left behind
		}
		conn.Close()
		d.out.decide(h, it, v, rtt)
		return 0
	}
	if expired {
		d.expire(h, it, rtt)
		return 0
	}
	class, errno := probe.Classify(err)
	if busyErrno(errno) {
		d.tries--
		return errno
	}
	if class == probe.Timeout && errno == 0 {
		d.expire(h, it, rtt)
		return 0
	}
	var info *icmpInfo
	if m, ok := sock.Unreachable(it.port); ok {
		info = &icmpInfo{ICMP: probe.ICMP{V6: m.Origin == sys.OriginICMP6, Type: m.Type, Code: m.Code, From: m.Offender},
			fromTarget: m.Offender == h.Addr.WithZone("")}
	}
	if h.status.Load() == statusDown {
		d.out.skip()
		return 0
	}
	if errno == 0 {
		errno = syscall.EINVAL // a failure with no errno: the dialer refused before any socket
	}
	d.out.decide(h, it, classify(errno, info, false), rtt)
	return 0
}

// dialing is a dial's socket as deadline sees it.
type dialing struct {
	raw   atomic.Pointer[syscall.RawConn]
	start atomic.Int64 // unix nanoseconds; 0 until the socket exists
}

// deadline cancels a dial once it has waited the host's timeout, which
// shrinks while it waits when another probe finds the host's round-trip
// time (a host nothing has answered yet is looked at every few
// milliseconds, as the epoll engine's sweep does). As the sweep does, it
// first asks the socket (where the system lets it): an answer that came
// while the dialing goroutine waited for a thread is taken, not lost to
// the deadline. It waits at least floor. After stop returns it cancels
// nothing.
func (d *dialer) deadline(h *hostState, dial *dialing, floor time.Duration, cancel context.CancelFunc) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTimer(max(floor, d.e.timeout(h)))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			next := unconfirmedPoll
			if start := dial.start.Load(); start != 0 {
				age, tmo := time.Since(time.Unix(0, start)), max(floor, d.e.timeout(h))
				switch answered, ok := sys.Answered(*dial.raw.Load()); {
				case age < tmo:
					next = tmo - age
					if h.status.Load() == statusUnconfirmed {
						next = min(next, unconfirmedPoll)
					}
				case ok && answered:
					// The dial returns with the answer once it runs;
					// look again in case the socket was not yet connecting.
				default:
					cancel()
					return
				}
			}
			t.Reset(next)
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// expire handles a probe nothing answered: try again or call it filtered.
func (d *dialer) expire(h *hostState, it item, age time.Duration) {
	d.e.silent(h)
	if d.e.retry(it) {
		it.tries++
		d.retry = append(d.retry, it)
		return
	}
	d.out.decide(h, it, vNoResponse, age)
}
