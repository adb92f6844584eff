package httpsafe

import "github.com/reach-tools/reach/internal/sys"

// Bounds of the derived caps.
const (
	// MinConns is the least total a derived cap allows, even when the
	// reserve leaves less: a server that accepts nothing helps no one, and
	// eight descriptors more do not starve the probes.
	MinConns = 8
	// MaxConns is the most a derived total cap allows; --http-max-conns
	// goes beyond it.
	MaxConns = 16384
	// MaxConnsPerClient is the most one client address may hold under a
	// derived cap: a browser opens six per host, a hub's agents one each.
	MaxConnsPerClient = 64
	// unknownLimit stands for the file limit where it cannot be read.
	unknownLimit = 1024
)

// Caps are the open connections a server allows, in total and per client
// IP address.
type Caps struct{ Total, PerClient int }

// CapsFor derives the caps from the file limit, the descriptors open now
// and the reserve the rest of the program needs: the total is what is left
// (limit - open - reserve), kept within [MinConns, MaxConns]; one client may
// hold a quarter of it, within [2, MaxConnsPerClient], so no single address
// takes the whole. With the limit of 128 and watch's reserve, that is 8 and
// 2; with 1,024 and the agent's (96), about 900 and 64.
func CapsFor(limit uint64, open, reserve int) Caps {
	avail := int64(limit) - int64(max(open, 0)) - int64(reserve)
	total := int(min(max(avail, MinConns), MaxConns))
	return Caps{Total: total, PerClient: min(max(total/4, 2), MaxConnsPerClient)}
}

// CapsFromLimit is CapsFor with this process's file limit and open
// descriptors (1,024 and none where the system cannot tell).
func CapsFromLimit(reserve int) Caps {
	limit, open, err := sys.FileLimit()
	if err != nil {
		limit, open = unknownLimit, 0
	}
	return CapsFor(limit, open, reserve)
}
