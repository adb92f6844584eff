package sys

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// Routes lists the main routing table of the calling thread's network
// namespace, both families: what `ip route` and `ip -6 route` print. Each
// Route has its Prefix, Type, Gateway, IfIndex and Table.
func Routes(ctx context.Context) ([]Route, error) {
	var out []Route
	for _, family := range []byte{unix.AF_INET, unix.AF_INET6} {
		req := routeDump(family)
		err := NetlinkDump(ctx, unix.NETLINK_ROUTE, rtmGetRoute, req, func(m NetlinkMessage) error {
			if m.Type != rtmNewRoute {
				return nil
			}
			r, err := parseRouteMsg(m.Data)
			if err != nil {
				return err
			}
			if r.Table == mainTable && r.Prefix.IsValid() {
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sys: routes: %w", err)
		}
	}
	return out, nil
}

// routeDump is the payload of a dump of family's routes: an rtmsg that
// names only the family.
func routeDump(family byte) []byte {
	return append([]byte{family}, make([]byte, rtmsgLen-1)...)
}
