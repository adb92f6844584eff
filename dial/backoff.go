package dial

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff spaces the rounds of a dial. The zero value is gRPC's
// connection-backoff: 1 s, then ×1.6 per round up to 120 s, each delay
// jittered by ±20%. A round that took longer than its delay is followed at
// once, as in gRPC, so a slow failure is not paid twice.
type Backoff struct {
	Initial    time.Duration // delay after the first round; 0 means 1 s
	Multiplier float64       // growth per round; 0 means 1.6 (values below 1 mean 1)
	Jitter     float64       // ± fraction of each delay; 0 means 0.2, negative means none
	Max        time.Duration // cap on every delay before jitter, Initial included; 0 means 120 s
}

// Defaults of the zero Backoff (gRPC's connection-backoff).
const (
	DefaultBackoffInitial    = time.Second
	DefaultBackoffMultiplier = 1.6
	DefaultBackoffJitter     = 0.2
	DefaultBackoffMax        = 120 * time.Second
)

// Delay returns the pause after round retry (0-based), jittered.
func (b Backoff) Delay(retry int) time.Duration {
	return b.delay(retry, rand.Float64())
}

// delay computes the pause with u, uniform in [0,1), as the jitter draw.
func (b Backoff) delay(retry int, u float64) time.Duration {
	initial, mult, jitter, limit := b.Initial, b.Multiplier, b.Jitter, b.Max
	if initial <= 0 {
		initial = DefaultBackoffInitial
	}
	switch {
	case mult == 0:
		mult = DefaultBackoffMultiplier
	case mult < 1:
		mult = 1
	}
	switch {
	case jitter == 0:
		jitter = DefaultBackoffJitter
	case jitter < 0:
		jitter = 0
	}
	if limit <= 0 {
		limit = DefaultBackoffMax
	}
	d := float64(initial) * math.Pow(mult, float64(max(retry, 0)))
	if d > float64(limit) || math.IsInf(d, 0) {
		d = float64(limit)
	}
	d *= 1 + jitter*(2*u-1)
	return time.Duration(d)
}
