package scan

import (
	"errors"
	"fmt"
	"slices"
)

// DefaultMaxProbes is how many host×port probes a scan makes at most unless
// Options.MaxProbes says otherwise: every port of a /24 (256 × 65,535 is
// 16,776,960). A /12 with every port is 68.7 billion probes, days of
// traffic; typed by mistake, it must not start.
const DefaultMaxProbes = 1 << 24

// ErrTooManyProbes marks a scan refused for its size: see *SizeError.
var ErrTooManyProbes = errors.New("scan: too many probes")

// SizeError is a scan refused before it sent anything, because hosts ×
// ports is more than its limit.
type SizeError struct {
	Hosts, Ports int
	Probes       int64 // Hosts × Ports
	Limit        int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("scan: %d hosts × %d ports is %d probes, more than the limit of %d; "+
		"raise the limit to at least %d to confirm, or scan fewer hosts or ports",
		e.Hosts, e.Ports, e.Probes, e.Limit, e.Probes)
}

func (e *SizeError) Unwrap() error { return ErrTooManyProbes }

// checkSize refuses a scan of more than limit host×port pairs (0: the
// default limit; negative: none), counting each port once.
func checkSize(targets []Target, ports []uint16, limit int64) error {
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = DefaultMaxProbes
	}
	nports := len(slices.Compact(slices.Sorted(slices.Values(ports))))
	if n := int64(len(targets)) * int64(nports); n > limit {
		return &SizeError{Hosts: len(targets), Ports: nports, Probes: n, Limit: limit}
	}
	return nil
}
