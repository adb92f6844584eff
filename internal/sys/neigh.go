package sys

import (
	"encoding/binary"
	"net/netip"
)

// Neighbour states (NUD_* in linux/neighbour.h) that mean address
// resolution failed: the host did not answer ARP (IPv4) or neighbour
// solicitation (IPv6).
const (
	NeighIncomplete = 0x01
	NeighFailed     = 0x20
)

// Neighbour states that hold an answer: REACHABLE was confirmed within the
// last reachable time; STALE, DELAY and PROBE were, earlier, and are being
// (or will be) checked again; PERMANENT and NOARP were never asked.
const (
	NeighReachable = 0x02
	NeighStale     = 0x04
	NeighDelay     = 0x08
	NeighProbe     = 0x10
	NeighNoARP     = 0x40
	NeighPermanent = 0x80
)

// Neighbour messages (linux/neighbour.h).
const (
	ndmsgLen = 12 // struct ndmsg
	ndaDst   = 1  // NDA_DST
)

// parseNeigh decodes one RTM_NEWNEIGH message: struct ndmsg, then route
// attributes, of which NDA_DST holds the neighbour's address.
func parseNeigh(b []byte) (netip.Addr, uint16, bool) {
	if len(b) < ndmsgLen {
		return netip.Addr{}, 0, false
	}
	state := binary.NativeEndian.Uint16(b[8:10])
	for a := b[ndmsgLen:]; len(a) >= 4; {
		l := int(binary.NativeEndian.Uint16(a[0:2]))
		typ := binary.NativeEndian.Uint16(a[2:4])
		if l < 4 || l > len(a) {
			return netip.Addr{}, 0, false
		}
		if typ == ndaDst {
			addr, ok := netip.AddrFromSlice(a[4:l])
			return addr.Unmap(), state, ok
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	return netip.Addr{}, 0, false
}
