//go:build !linux

package sys

import (
	"context"
	"net/netip"
	"time"
)

// ProbeHop is Linux-only; elsewhere it returns ErrUnsupported.
func ProbeHop(ctx context.Context, dst netip.AddrPort, ttl int, wait time.Duration) (Hop, error) {
	return Hop{TTL: ttl}, ErrUnsupported
}
