//go:build !linux

package discover

import (
	"context"
	"net/netip"
)

func run(ctx context.Context, addrs []netip.Addr, opt Options) ([]Result, error) {
	return nil, ErrUnsupported
}
