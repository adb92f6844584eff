package rtt_test

import (
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/rtt"
)

func TestEstimator(t *testing.T) {
	var r rtt.Estimator
	lo, hi := 100*time.Millisecond, time.Second
	if got := r.Timeout(lo, hi); got != hi {
		t.Fatalf("no samples: %v, want %v", got, hi)
	}
	r.Update(40 * time.Millisecond) // srtt 40, rttvar 20 -> 120
	if got := r.Timeout(lo, hi); got != 120*time.Millisecond {
		t.Fatalf("one sample: %v, want 120ms", got)
	}
	for range 50 {
		r.Update(50 * time.Microsecond)
	}
	if got := r.Timeout(lo, hi); got != lo {
		t.Fatalf("fast host: %v, want the floor %v", got, lo)
	}
	r.Update(10 * time.Second)
	if got := r.Timeout(lo, hi); got != hi {
		t.Fatalf("after a slow sample: %v, want the ceiling %v", got, hi)
	}
}
