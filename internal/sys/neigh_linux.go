package sys

import (
	"context"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Neighbours calls fn with the address and state (NUD_* bits, such as
// NeighFailed) of every entry in the neighbour tables (ARP and NDP) of the
// calling thread's network namespace.
func Neighbours(ctx context.Context, fn func(addr netip.Addr, state uint16)) error {
	// AF_UNSPEC: every family.
	req := make([]byte, ndmsgLen)
	return NetlinkDump(ctx, unix.NETLINK_ROUTE, unix.RTM_GETNEIGH, req, func(m NetlinkMessage) error {
		if a, st, ok := parseNeigh(m.Data); ok {
			fn(a, st)
		}
		return nil
	})
}
