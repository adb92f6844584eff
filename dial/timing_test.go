package dial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reach-tools/reach/probe"
)

// These tests run in a synctest bubble: time is virtual, so they assert exact
// instants without sleeping.

func TestBackoffDelay(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		b     Backoff
		retry int
		u     float64
		want  time.Duration
	}{
		{"grpc first", Backoff{}, 0, 0.5, s},
		{"grpc second", Backoff{}, 1, 0.5, 1600 * time.Millisecond},
		{"grpc third", Backoff{}, 2, 0.5, 2560 * time.Millisecond},
		{"grpc capped", Backoff{}, 30, 0.5, 120 * s},
		{"grpc huge retry stays capped", Backoff{}, 1 << 30, 0.5, 120 * s},
		{"jitter low", Backoff{}, 0, 0, 800 * time.Millisecond},
		{"jitter high", Backoff{}, 0, 1, 1200 * time.Millisecond},
		{"no jitter", Backoff{Jitter: -1}, 0, 0, s},
		{"custom", Backoff{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 300 * time.Millisecond, Jitter: -1}, 3, 0, 300 * time.Millisecond},
		{"multiplier below one is constant", Backoff{Initial: s, Multiplier: 0.5, Jitter: -1}, 5, 0, s},
		{"max below initial caps it", Backoff{Initial: 2 * s, Max: s, Jitter: -1}, 0, 0, s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.delay(tt.retry, tt.u); got != tt.want {
				t.Errorf("delay(%d, %v) = %v, want %v", tt.retry, tt.u, got, tt.want)
			}
		})
	}
	for range 1000 {
		if d := (Backoff{}).Delay(0); d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("Delay(0) = %v, outside 1s ± 20%%", d)
		}
	}
}

func TestRetryBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		refusals := 0
		fn.set("198.18.0.1:80", func(ctx context.Context) (net.Conn, error) {
			if refusals < 3 {
				refusals++
				return refuse(ctx)
			}
			return accept(0)(ctx)
		})
		var pauses []time.Duration
		onRetry := func(round int, wait time.Duration) {
			if round != len(pauses) {
				t.Errorf("OnRetry for round %d, want %d", round, len(pauses))
			}
			pauses = append(pauses, wait)
		}
		d := New(eps(t, "198.18.0.1:80"), Options{Dial: fn.dial, Retries: -1, Backoff: Backoff{Jitter: -1}, Eject: Ejection{Consecutive: -1}, OnRetry: onRetry})
		conn, err := d.DialContext(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		want := []time.Duration{0, time.Second, 2600 * time.Millisecond, 5160 * time.Millisecond}
		if got := callTimes(fn.log()); !slices.Equal(got, want) {
			t.Errorf("attempts at %v, want %v (gRPC backoff 1s ×1.6)", got, want)
		}
		// Each pause is announced before it starts, with its length.
		if wantPauses := []time.Duration{time.Second, 1600 * time.Millisecond, 2560 * time.Millisecond}; !slices.Equal(pauses, wantPauses) {
			t.Errorf("OnRetry pauses %v, want %v", pauses, wantPauses)
		}
	})
}

// A round slower than its backoff delay is followed at once, as in gRPC.
func TestSlowRoundIsNotPaidTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.set("198.18.0.1:80", drop)
		d := New(eps(t, "198.18.0.1:80"), Options{Dial: fn.dial, Timeout: 3 * time.Second, Retries: 2, Backoff: Backoff{Jitter: -1}})
		_, err := d.DialContext(t.Context())
		if !errors.Is(err, probe.Timeout) {
			t.Fatalf("err = %v, want a timeout", err)
		}
		want := []time.Duration{0, 3 * time.Second, 6 * time.Second}
		if got := callTimes(fn.log()); !slices.Equal(got, want) {
			t.Errorf("attempts at %v, want %v", got, want)
		}
	})
}

func TestContextBoundsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		d := New(eps(t, "198.18.0.1:80", "198.18.0.2:80"), Options{Dial: fn.dial, Retries: -1, Eject: Ejection{Consecutive: -1}})
		start := time.Now()
		_, err := d.DialContext(ctx)
		if took := time.Since(start); took != 10*time.Second {
			t.Errorf("returned after %v, want at the 10s deadline", took)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, probe.Refused) {
			t.Errorf("err = %v, want deadline exceeded and refused", err)
		}
		var de *Error
		if !errors.As(err, &de) || len(de.Last) != 2 {
			t.Fatalf("err = %#v, want *Error with both endpoints", err)
		}
		for _, a := range de.Last {
			if a.Class != probe.Refused {
				t.Errorf("%s last class %s, want refused", a.Label(), a.Class)
			}
		}
	})
}

func TestRaceStagger(t *testing.T) {
	tests := []struct {
		name      string
		delay     time.Duration
		hosts     []behaviour
		wantStart []time.Duration
		wantTook  time.Duration
		wantWin   string
	}{
		{"default delay, third wins", 0, []behaviour{drop, drop, accept(10 * time.Millisecond)},
			[]time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond}, 510 * time.Millisecond, "198.18.0.3:80"},
		{"refusal starts the next at once", 0, []behaviour{refuse, accept(time.Millisecond), drop},
			[]time.Duration{0, 0}, time.Millisecond, "198.18.0.2:80"},
		{"slow first still wins", 100 * time.Millisecond, []behaviour{accept(150 * time.Millisecond), accept(time.Second)},
			[]time.Duration{0, 100 * time.Millisecond}, 150 * time.Millisecond, "198.18.0.1:80"},
		{"primary fast, no second attempt", 0, []behaviour{accept(time.Millisecond), accept(time.Millisecond)},
			[]time.Duration{0}, time.Millisecond, "198.18.0.1:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fn := newFakeNet()
				var addrs []string
				for i, b := range tt.hosts {
					a := fmt.Sprintf("198.18.0.%d:80", i+1)
					addrs = append(addrs, a)
					fn.set(a, b)
				}
				var log attemptLog
				d := New(eps(t, addrs...), Options{Dial: fn.dial, Policy: Race, AttemptDelay: tt.delay, OnAttempt: log.add})
				start := time.Now()
				conn, err := d.DialContext(t.Context())
				took := time.Since(start)
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				if took != tt.wantTook {
					t.Errorf("connected after %v, want %v", took, tt.wantTook)
				}
				if got := callTimes(fn.log()); !slices.Equal(got, tt.wantStart) {
					t.Errorf("attempts started at %v, want %v", got, tt.wantStart)
				}
				var won []string
				for _, a := range log.get() {
					switch a.Class {
					case probe.Open:
						won = append(won, a.Addr.String())
					case probe.Canceled, probe.Refused:
					default:
						t.Errorf("attempt %+v: unexpected class", a)
					}
				}
				if !slices.Equal(won, []string{tt.wantWin}) {
					t.Errorf("winners %v, want [%s]", won, tt.wantWin)
				}
				if n := len(log.get()); n != len(tt.wantStart) {
					t.Errorf("%d attempts reported, want %d (losers included)", n, len(tt.wantStart))
				}
			})
		})
	}
}

func TestLocalErrorSurfacesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.set("198.18.0.1:80", fail(syscall.EMFILE))
		fn.set("198.18.0.2:80", accept(0))
		for _, p := range Policies {
			d := New(eps(t, "198.18.0.1:80", "198.18.0.2:80"), Options{Dial: fn.dial, Policy: p, Retries: -1})
			if p == RoundRobin || p == Random {
				continue // they may start at the healthy endpoint
			}
			_, err := d.DialContext(t.Context())
			var de *Error
			if !errors.As(err, &de) || !errors.Is(err, probe.LocalError) || !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("%s: err = %v, want local-error EMFILE", p, err)
			}
			if de.Attempts != 1 {
				t.Errorf("%s: %d attempts, want 1: EMFILE is not retried", p, de.Attempts)
			}
		}
		if n := len(fn.log()); n != 2 {
			t.Errorf("%d dials, want 2 (one per policy tried)", n)
		}
	})
}

func TestCustomRetryable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		d := New(eps(t, "198.18.0.1:80", "198.18.0.2:80"), Options{Dial: fn.dial, Retries: 5,
			Retryable: func(c probe.Class) bool { return c == probe.Timeout }})
		_, err := d.DialContext(t.Context())
		if !errors.Is(err, probe.Refused) || len(fn.log()) != 1 {
			t.Errorf("err = %v after %d dials; want refused after 1 (refused made non-retryable)", err, len(fn.log()))
		}
	})
}

func callTimes(cs []fakeCall) []time.Duration {
	out := make([]time.Duration, len(cs))
	for i, c := range cs {
		out[i] = c.at
	}
	return out
}
