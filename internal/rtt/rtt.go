// Package rtt keeps RFC 6298's smoothed round-trip time, from which the
// scanner and host discovery derive their timeouts, as nmap does.
package rtt

import "time"

// Estimator is a smoothed round-trip time and its variation. The zero
// value has no sample yet.
type Estimator struct {
	srtt, rttvar time.Duration
	n            int
}

// Update folds in one round-trip sample.
func (r *Estimator) Update(sample time.Duration) {
	if r.n == 0 {
		r.srtt, r.rttvar = sample, sample/2
	} else {
		d := r.srtt - sample
		if d < 0 {
			d = -d
		}
		r.rttvar += (d - r.rttvar) / 4
		r.srtt += (sample - r.srtt) / 8
	}
	r.n++
}

// Timeout is srtt + 4·rttvar clamped to [lo, hi]; hi before any sample.
func (r *Estimator) Timeout(lo, hi time.Duration) time.Duration {
	if r.n == 0 {
		return hi
	}
	return min(max(r.srtt+4*r.rttvar, lo), hi)
}

// SRTT is the smoothed round-trip time; 0 before any sample.
func (r *Estimator) SRTT() time.Duration { return r.srtt }
