package sockets

import (
	"context"
	"fmt"

	"github.com/reach-tools/reach/internal/sys"
)

// List returns the TCP sockets selected by opt with their owning processes,
// from the IP Helper API's tables (GetExtendedTcpTable, IPv4 and IPv6) and
// each pid's executable (QueryFullProcessImageName).
func List(ctx context.Context, opt Options) (Table, error) {
	var rows []winRow
	for _, v6 := range []bool{false, true} {
		b, err := sys.TCPTable(v6)
		if err != nil {
			return Table{}, fmt.Errorf("sockets: %w", err)
		}
		r, err := parseTCPTable(b, v6)
		if err != nil {
			return Table{}, err
		}
		rows = append(rows, r...)
		if err := ctx.Err(); err != nil {
			return Table{}, err
		}
	}
	// Only the rows that pass the address filters are named: a narrow
	// filter opens a process or two, not every one.
	kept := rows[:0]
	for _, r := range rows {
		if opt.keep(&r.Socket) {
			kept = append(kept, r)
		}
	}
	socks, warnings := winSockets(kept, sys.ProcessImage)
	return tableOf(socks, opt, "iphlpapi", warnings), nil
}
