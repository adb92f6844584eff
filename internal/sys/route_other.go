//go:build !linux

package sys

import (
	"context"
	"net/netip"
)

// RouteGet is Linux-only; elsewhere it returns ErrUnsupported.
func RouteGet(ctx context.Context, dst netip.Addr) (Route, error) {
	return Route{Dst: dst}, ErrUnsupported
}

// RouteGetFrom is Linux-only; elsewhere it returns ErrUnsupported.
func RouteGetFrom(ctx context.Context, dst netip.Addr, from RouteFrom) (Route, error) {
	return Route{Dst: dst}, ErrUnsupported
}
