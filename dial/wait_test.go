package dial

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// The synctest tests below run Wait against fake endpoints in virtual time;
// the loopback ones against real sockets.

// Attempts start 50ms apart and back off (×1.6, ±20%) to the interval; the
// target is ready when the attempt that connects ends.
func TestWaitSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		start := time.Now()
		fn.set("198.18.0.1:80", func(ctx context.Context) (net.Conn, error) {
			if time.Since(start) < 2*time.Second {
				return refuse(ctx)
			}
			return accept(0)(ctx)
		})
		const interval = 200 * time.Millisecond
		res, err := Wait(t.Context(), eps(t, "198.18.0.1:80"), WaitOptions{Timeout: 10 * time.Second, Interval: interval, Dial: fn.dial})
		if err != nil || !res.Ready {
			t.Fatalf("Wait = %+v, %v; want ready", res, err)
		}
		at := callTimes(fn.log())
		for i := 1; i < len(at); i++ {
			gap := at[i] - at[i-1]
			if i == 1 && (gap < 40*time.Millisecond || gap > 60*time.Millisecond) {
				t.Errorf("first pause %v, want 50ms ± 20%%", gap)
			}
			if gap > interval+interval/5 {
				t.Errorf("pause %d is %v, want at most the interval %v + 20%%", i, gap, interval)
			}
		}
		// 2s at 50ms growing to 200ms: at least 2s/240ms, at most 2s/40ms.
		if len(at) < 9 || len(at) > 51 {
			t.Errorf("%d attempts in 2s, want 9 to 51: %v", len(at), at)
		}
		tg := res.Targets[0]
		if last := at[len(at)-1]; tg.After != last || tg.Attempts != len(at) || tg.Class != probe.Open || tg.Err != nil || tg.Why != "" {
			t.Errorf("target %+v; want ready after %v (the connecting attempt), %d attempts, open", tg, last, len(at))
		}
		if res.Elapsed != tg.After {
			t.Errorf("elapsed %v, want %v", res.Elapsed, tg.After)
		}
	})
}

func TestWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.set("198.18.0.2:80", accept(0))
		start := time.Now()
		res, err := Wait(t.Context(), eps(t, "198.18.0.1:80", "198.18.0.2:80"), WaitOptions{Timeout: 30 * time.Second, Dial: fn.dial})
		if took := time.Since(start); took != 30*time.Second {
			t.Errorf("returned after %v, want at the 30s timeout", took)
		}
		if res == nil || res.Ready || !res.Targets[1].Ready || res.Targets[0].Ready {
			t.Fatalf("result %+v; want the first target only not ready", res)
		}
		var we *WaitError
		if !errors.As(err, &we) || len(we.NotReady) != 1 {
			t.Fatalf("err = %v; want a *WaitError naming one target", err)
		}
		const why = "198.18.0.1:80 still refused after 30s — likely: the server is not running"
		if we.NotReady[0].Why != why || res.Targets[0].Why != why || res.Targets[1].Why != "" {
			t.Errorf("why %q / %q; want %q, and none for the ready target", we.NotReady[0].Why, res.Targets[1].Why, why)
		}
		if !errors.Is(err, probe.Refused) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("err = %v; want it to match refused, ECONNREFUSED and the deadline", err)
		}
		if err.Error() != "dial: wait: "+why {
			t.Errorf("message %q", err)
		}
	})
}

// With Any the first target ready ends the wait; the others' dials stop.
func TestWaitAny(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.set("198.18.0.1:80", drop)
		fn.set("198.18.0.2:80", accept(100*time.Millisecond))
		start := time.Now()
		res, err := Wait(t.Context(), eps(t, "198.18.0.1:80", "198.18.0.2:80"), WaitOptions{Timeout: time.Minute, Any: true, Dial: fn.dial})
		if took := time.Since(start); err != nil || !res.Ready || took != 100*time.Millisecond {
			t.Fatalf("Wait = %+v, %v after %v; want ready after 100ms", res, err, took)
		}
		if a, b := res.Targets[0], res.Targets[1]; a.Ready || a.Why != "" || !b.Ready || b.After != 100*time.Millisecond {
			t.Errorf("targets %+v, %+v; want only the second ready, no explanation for the first", a, b)
		}
	})
}

// Without Timeout the context bounds the wait, and the explanation says
// when it ended.
func TestWaitContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := Wait(ctx, eps(t, "198.18.0.1:80"), WaitOptions{Dial: fn.dial})
		var we *WaitError
		if !errors.As(err, &we) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(we.NotReady[0].Why, "still refused after 2s —") {
			t.Errorf("err = %v; want the deadline and 'still refused after 2s'", err)
		}
	})
}

func TestWaitInterrupted(t *testing.T) {
	fn := newFakeNet()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := Wait(ctx, eps(t, "198.18.0.1:80"), WaitOptions{Timeout: time.Minute, Dial: fn.dial})
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want a *WaitError for the interrupt", err)
	}
	// Nothing was tried before the interrupt.
	if tg := res.Targets[0]; tg.Class != "" || tg.Why != "198.18.0.1:80: no attempt finished when interrupted" {
		t.Errorf("target %+v", tg)
	}
}

// A failure that retrying cannot mend (here: no local address) stops the
// target's dial at once; the explanation does not claim a timeout passed.
func TestWaitStopsOnLocalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.set("198.18.0.1:80", fail(syscall.EADDRNOTAVAIL))
		res, err := Wait(t.Context(), eps(t, "198.18.0.1:80"), WaitOptions{Timeout: time.Minute, Dial: fn.dial})
		var we *WaitError
		if !errors.As(err, &we) || we.Err != nil || res.Elapsed != 0 || res.Targets[0].Attempts != 1 {
			t.Fatalf("Wait = %+v, %v; want one attempt and a *WaitError without a context error", res, err)
		}
		if why := we.NotReady[0].Why; !strings.HasPrefix(why, "198.18.0.1:80 still local-error after 0s —") {
			t.Errorf("why %q", why)
		}
	})
}

// OnUpdate sees each attempt of each target in turn, then its readiness.
func TestWaitOnUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		start := time.Now()
		fn.set("198.18.0.2:80", func(ctx context.Context) (net.Conn, error) {
			if time.Since(start) < time.Second {
				return refuse(ctx)
			}
			return accept(0)(ctx)
		})
		var mu sync.Mutex
		seen := map[int][]WaitTarget{}
		onUpdate := func(i int, tg WaitTarget) {
			mu.Lock()
			defer mu.Unlock()
			seen[i] = append(seen[i], tg)
		}
		res, err := Wait(t.Context(), eps(t, "198.18.0.1:80", "198.18.0.2:80"), WaitOptions{Timeout: 3 * time.Second, Dial: fn.dial, OnUpdate: onUpdate})
		if err == nil {
			t.Fatal("ready, want the first target refused to the end")
		}
		for i, ups := range seen {
			for n, u := range ups[:res.Targets[i].Attempts] {
				if u.Attempts != n+1 || u.Ready {
					t.Errorf("target %d update %d: %+v, want attempt %d, not ready", i, n, u, n+1)
				}
			}
		}
		if last := seen[0][len(seen[0])-1]; last.Class != probe.Refused || last.Attempts != res.Targets[0].Attempts {
			t.Errorf("last update of the refused target %+v, want its %d attempts", last, res.Targets[0].Attempts)
		}
		up := seen[1]
		if len(up) != res.Targets[1].Attempts+1 || !up[len(up)-1].Ready || up[len(up)-2].Class != probe.Open {
			t.Errorf("updates of the target that came up: %+v; one per attempt, the last open, then ready", up)
		}
	})
}

func TestWaitNoEndpoints(t *testing.T) {
	if res, err := Wait(t.Context(), nil, WaitOptions{}); res != nil || !errors.Is(err, ErrNoEndpoints) {
		t.Errorf("Wait(nil) = %v, %v; want ErrNoEndpoints", res, err)
	}
}

func TestWaitLoopbackRefused(t *testing.T) {
	down := testnet.ClosedPort(t)
	// Long enough for an attempt to finish on a loaded machine (one takes
	// well under a millisecond here).
	res, err := Wait(t.Context(), endpoints(down), WaitOptions{Timeout: time.Second})
	want := down.String() + " still refused after 1s — likely: the server is not running"
	if err == nil || res.Targets[0].Why != want || res.Targets[0].Attempts < 2 {
		t.Errorf("Wait = %+v, %v; want several attempts and %q", res.Targets[0], err, want)
	}
}

func TestWaitForPortThatOpensLater(t *testing.T) {
	down := testnet.ClosedPort(t)
	done := make(chan error, 1)
	go func() {
		_, err := Wait(t.Context(), endpoints(down), WaitOptions{Timeout: 30 * time.Second})
		done <- err
	}()
	ln, err := net.Listen("tcp", down.String())
	if err != nil {
		t.Skipf("could not take %s back: %v", down, err)
	}
	defer ln.Close()
	if err := <-done; err != nil {
		t.Errorf("Wait = %v, want ready once %s listens", err, down)
	}
}

// A port that accepts and at once closes (docker-proxy or a load balancer
// whose backend is down) is ready for a plain wait, but not with ReadWait,
// which sees it closed-by-peer.
func TestWaitReadWait(t *testing.T) {
	addr := testnet.Serve(t, testnet.HangUp)
	if _, err := Wait(t.Context(), endpoints(addr), WaitOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("plain wait: %v; want ready", err)
	}
	res, err := Wait(t.Context(), endpoints(addr), WaitOptions{Timeout: 700 * time.Millisecond, ReadWait: 200 * time.Millisecond})
	if err == nil || res.Targets[0].Class != probe.ClosedByPeer || !errors.Is(err, probe.ClosedByPeer) {
		t.Fatalf("with ReadWait: %+v, %v; want closed-by-peer", res.Targets[0], err)
	}
	// A port that accepts and closes at once is a proxy without a backend
	// more often than a crash: a crashed server's port refuses.
	if why := res.Targets[0].Why; !strings.Contains(why, "still closed-by-peer after 700ms — likely: a proxy or load balancer accepted for a server behind it that is down") {
		t.Errorf("why %q does not name the likely proxy", why)
	}
}

// An attempt cut short because the wait ended says nothing about the
// target: its class stays what the attempt before it saw.
func TestWaitKeepsClassOverCutAttempt(t *testing.T) {
	tests := []struct {
		name string
		opt  WaitOptions
		next behaviour // the second attempt, cut by the end of the wait
		// more: a third attempt may start, and be cut, at the deadline
		// before the context is done.
		more bool
	}{
		// Canceled: the other target is ready.
		{"any", WaitOptions{Timeout: time.Minute, Any: true}, drop, false},
		// Timed out at the wait's deadline, long before its own.
		{"deadline", WaitOptions{Timeout: time.Second}, accept(time.Minute), false},
		// Timed out by the dialer's own timer at the wait's deadline, maybe
		// before the wait's context is done (reach wait said "still
		// timeout" of a refused port, now and then).
		{"dialer deadline", WaitOptions{Timeout: time.Second}, timeoutAtDeadline, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fn := newFakeNet()
				tries := 0
				fn.set("198.18.0.1:80", func(ctx context.Context) (net.Conn, error) {
					if tries++; tries == 1 {
						return refuse(ctx)
					}
					return tt.next(ctx)
				})
				fn.set("198.18.0.2:80", accept(500*time.Millisecond))
				tt.opt.Dial = fn.dial
				res, _ := Wait(t.Context(), eps(t, "198.18.0.1:80", "198.18.0.2:80"), tt.opt)
				tg := res.Targets[0]
				if tg.Attempts != 2 && !(tt.more && tg.Attempts == 3) || tg.Class != probe.Refused || !errors.Is(tg.Err, syscall.ECONNREFUSED) {
					t.Errorf("target %+v; want 2 attempts, the last cut short, and the class refused", tg)
				}
			})
		})
	}
}
