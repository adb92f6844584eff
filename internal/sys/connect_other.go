//go:build !linux

package sys

import (
	"context"
	"net/netip"
)

// CanConnectOnce reports whether ConnectOnce works on this OS.
const CanConnectOnce = false

// Attempt is the outcome of ConnectOnce.
type Attempt struct {
	Err       error
	Local     netip.AddrPort
	ICMP      ExtendedErr
	HasICMP   bool
	QueueRead bool
}

// ConnectOnce is Linux-only; elsewhere it fails with ErrUnsupported.
func ConnectOnce(context.Context, netip.AddrPort, netip.Addr, string) Attempt {
	return Attempt{Err: ErrUnsupported}
}
