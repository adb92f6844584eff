package dial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// DefaultWaitInterval is WaitOptions.Interval's default.
const DefaultWaitInterval = 250 * time.Millisecond

// waitFirstPause is the pause after a target's first failed attempt; the
// pauses grow from it to WaitOptions.Interval, so a server that comes up
// in a few milliseconds is seen in a few milliseconds.
const waitFirstPause = 50 * time.Millisecond

// WaitOptions tune Wait. The zero value waits for every endpoint until the
// context ends, DefaultWaitInterval at most between attempts.
type WaitOptions struct {
	// Timeout bounds the whole wait; 0 means the context alone does.
	Timeout time.Duration
	// Interval is the longest pause between attempts to one endpoint:
	// attempts start 50ms apart and back off to it. 0 means
	// DefaultWaitInterval.
	Interval time.Duration
	// Any ends the wait as soon as one endpoint accepts; by default every
	// one must.
	Any bool
	// ReadWait, when positive, holds each connection that long and counts
	// an endpoint that resets or closes it meanwhile as not ready
	// (Options.ReadWait): a proxy such as docker-proxy accepts while the
	// server behind it is down.
	ReadWait time.Duration
	// Network, Dial, Resolver, Source and Interface are as in Options.
	Network   string
	Dial      probe.DialFunc
	Resolver  *net.Resolver
	Source    netip.Addr
	Interface string
	// Layers, when set, holds per endpoint (in the order given) the
	// layers above TCP it must answer before it is ready: a TLS
	// handshake, an application's answer (probe.Layers makes them from a
	// URL). A shorter slice, or a zero Layers, waits for TCP alone. A
	// connection whose layers are not ready counts as an attempt that
	// failed: the next comes after the same pauses.
	Layers []Layers
	// OnUpdate, when set, is called with what is known of endpoint i (in
	// the order given) after each of its attempts and when it is ready.
	// Calls for one endpoint are never concurrent; calls for different
	// endpoints are.
	OnUpdate func(i int, t WaitTarget)
}

// Layers are the layers above TCP an endpoint must answer.
type Layers struct {
	TLS *probe.TLSOptions
	App *app.Request
}

// WaitResult is what Wait saw.
type WaitResult struct {
	// Ready is set when every endpoint accepted, or one did with
	// WaitOptions.Any.
	Ready   bool
	Elapsed time.Duration
	Targets []WaitTarget // one per endpoint, in the order given
}

// WaitTarget is what Wait saw of one endpoint.
type WaitTarget struct {
	Endpoint endpoint.Endpoint
	Ready    bool
	After    time.Duration // from the start of the wait until it accepted; 0 when not ready
	Attempts int           // attempts and name lookups made
	// Class is the last attempt's class (probe.Open once ready); an attempt
	// cut short because the wait ended (canceled, or timed out at the
	// wait's deadline) does not replace a class seen before it. Empty while
	// no attempt has finished.
	Class probe.Class
	Err   error // the last attempt's error, as Class; nil when ready
	// Layer, Cause and Detail say, when the last attempt connected but a
	// layer above TCP was not ready, which ("tls", "http", ...), its
	// cause id and what it answered; empty otherwise.
	Layer  string
	Cause  app.Cause
	Detail string
	// TLS and App are the last attempt's layers, when it reached them.
	TLS *probe.TLSResult
	App *app.Result
	// Why says, for an endpoint not ready when the wait ended, what it last
	// did and its likely cause: "db:5432 still refused after 30s — likely:
	// the server is not running". Empty otherwise.
	Why string
}

// WaitError is a wait that ended before its endpoints were ready. It unwraps
// to each one's last error and to why the wait ended, so
// errors.Is(err, probe.Refused) and errors.Is(err, context.DeadlineExceeded)
// work.
type WaitError struct {
	NotReady []WaitTarget // the endpoints not ready, in the order given
	// Err is context.DeadlineExceeded when WaitOptions.Timeout passed, the
	// context's error when the context ended first, and nil when every
	// dial stopped on a failure that retrying cannot mend (local-error).
	Err error
}

func (e *WaitError) Error() string {
	why := make([]string, len(e.NotReady))
	for i, t := range e.NotReady {
		why[i] = t.Why
	}
	return "dial: wait: " + strings.Join(why, "; ")
}

// Unwrap returns every endpoint's last error, then why the wait ended.
func (e *WaitError) Unwrap() []error {
	errs := make([]error, 0, len(e.NotReady)+1)
	for _, t := range e.NotReady {
		switch {
		case t.Err != nil:
			errs = append(errs, t.Err)
		case t.Class != "":
			errs = append(errs, t.Class)
		}
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Wait dials each endpoint until it accepts a connection (and closes it):
// every endpoint, or any one with opt.Any, until opt.Timeout passes or ctx
// ends. Each endpoint has its own dialer retrying without end, attempts
// 50ms apart backing off to opt.Interval; a failure that retrying cannot
// mend (local-error) stops that endpoint's dialer.
//
// The result is always returned, ready or not. The error is nil when the
// result is ready, a *WaitError when it is not, and ErrNoEndpoints when
// endpoints is empty (with a nil result).
func Wait(ctx context.Context, endpoints []endpoint.Endpoint, opt WaitOptions) (*WaitResult, error) {
	if len(endpoints) == 0 {
		return nil, ErrNoEndpoints
	}
	interval := opt.Interval
	if interval <= 0 {
		interval = DefaultWaitInterval
	}
	start := time.Now()
	parent := ctx
	var cancel context.CancelFunc
	if opt.Timeout > 0 {
		ctx, cancel = context.WithTimeout(parent, opt.Timeout)
	} else {
		ctx, cancel = context.WithCancel(parent)
	}
	defer cancel()

	var mu sync.Mutex // guards targets while the dials run
	targets := make([]WaitTarget, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		targets[i].Endpoint = ep
		// update changes target i under mu, then reports the result.
		update := func(change func(t *WaitTarget)) {
			mu.Lock()
			change(&targets[i])
			t := targets[i]
			mu.Unlock()
			if opt.OnUpdate != nil {
				opt.OnUpdate(i, t)
			}
		}
		d := New([]endpoint.Endpoint{ep}, Options{
			Retries:   -1,
			Backoff:   Backoff{Initial: waitFirstPause, Max: interval},
			Eject:     Ejection{Consecutive: -1},
			ReadWait:  opt.ReadWait,
			Network:   opt.Network,
			Dial:      opt.Dial,
			Resolver:  opt.Resolver,
			Source:    opt.Source,
			Interface: opt.Interface,
			OnAttempt: func(a Attempt) {
				// An attempt that the end of the wait cut short (canceled,
				// or a connect or read wait timed out at the wait's
				// deadline) says nothing new about the target. The
				// dialer's own timer may end it at the deadline before the
				// context is done: the clock decides.
				cut := a.Class == probe.Canceled || ctx.Err() != nil
				if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
					cut = true
				}
				update(func(t *WaitTarget) {
					t.Attempts++
					if !cut || t.Class == "" {
						t.Class, t.Err = a.Class, a.Err
					}
				})
			},
		})
		var layers Layers
		if i < len(opt.Layers) {
			layers = opt.Layers[i]
		}
		wg.Go(func() {
			pause := waitFirstPause
			for {
				conn, err := d.DialContext(ctx)
				if err != nil {
					return
				}
				if layers.TLS == nil && layers.App == nil {
					conn.Close()
					break
				}
				up, r := probe.Upgrade(ctx, conn, ep, probe.Options{TLS: layers.TLS, App: layers.App})
				if up != nil {
					up.Close()
					update(func(t *WaitTarget) { t.TLS, t.App = r.TLS, r.App })
					break
				}
				layer, cause, detail := r.Layer()
				if ctx.Err() == nil {
					update(func(t *WaitTarget) {
						t.Class, t.Err, t.TLS, t.App = r.Class, r.Err, r.TLS, r.App
						t.Layer, t.Cause, t.Detail = layer, cause, detail
					})
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(pause):
				}
				pause = min(2*pause, interval)
			}
			update(func(t *WaitTarget) {
				t.Ready, t.After = true, time.Since(start)
				t.Class, t.Err = probe.Open, nil
				t.Layer, t.Cause, t.Detail = "", "", ""
			})
			if opt.Any {
				cancel()
			}
		})
	}
	wg.Wait()

	res := &WaitResult{Elapsed: time.Since(start), Targets: targets}
	ready := 0
	for _, t := range targets {
		if t.Ready {
			ready++
		}
	}
	res.Ready = ready == len(targets) || (opt.Any && ready > 0)
	if res.Ready {
		return res, nil
	}
	werr := &WaitError{Err: parent.Err()}
	if werr.Err == nil {
		werr.Err = ctx.Err()
	}
	after := "after " + opt.Timeout.String()
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		after = "when interrupted"
	case parent.Err() != nil, werr.Err == nil:
		// The context's deadline, or dials that stopped retrying: say
		// when, not a timeout that did not pass.
		after = "after " + res.Elapsed.Round(time.Millisecond).String()
	}
	for i := range res.Targets {
		if t := &res.Targets[i]; !t.Ready {
			t.Why = t.why(after)
			werr.NotReady = append(werr.NotReady, *t)
		}
	}
	return res, werr
}

// why says what t last did and its likely cause; after says when the wait
// ended ("after 30s", "when interrupted").
func (t *WaitTarget) why(after string) string {
	if t.Class == "" {
		return fmt.Sprintf("%s: no attempt finished %s", t.Endpoint, after)
	}
	if t.Layer != "" && t.Layer != "tcp" {
		// TCP connected; a layer above it never became ready.
		why := t.Detail
		if t.Cause != "" {
			why = string(t.Cause) + ": " + why
		}
		return fmt.Sprintf("%s accepts TCP, but its %s layer was still not ready %s — %s", t.Endpoint, t.Layer, after, why)
	}
	likely := ""
	if causes := t.Class.Causes(); len(causes) > 0 {
		likely = " — likely: " + causes[0]
	}
	return fmt.Sprintf("%s still %s %s%s", t.Endpoint, t.Class, after, likely)
}
