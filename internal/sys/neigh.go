package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
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

// neighRequest frames an RTM_GETNEIGH request for one entry: addr on the
// interface of index ifindex.
func neighRequest(addr netip.Addr, ifindex int, seq uint32) []byte {
	const rtmGetNeigh = 30
	a := addr.Unmap().AsSlice()
	total := nlmsgHdrLen + ndmsgLen + 4 + len(a) // addresses need no padding
	b := make([]byte, total)
	binary.NativeEndian.PutUint32(b[0:4], uint32(total))
	binary.NativeEndian.PutUint16(b[4:6], rtmGetNeigh)
	binary.NativeEndian.PutUint16(b[6:8], nlmFRequest)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	m := b[nlmsgHdrLen:]
	m[0] = 2 // AF_INET
	if len(a) == 16 {
		m[0] = 10 // AF_INET6
	}
	binary.NativeEndian.PutUint32(m[4:8], uint32(int32(ifindex)))
	at := m[ndmsgLen:]
	binary.NativeEndian.PutUint16(at[0:2], uint16(4+len(a)))
	binary.NativeEndian.PutUint16(at[2:4], ndaDst)
	copy(at[4:], a)
	return b
}

// parseNeighReply finds the answer to request seq: the entry's state, or
// ok false when the kernel has none (ENOENT); err for any other failure.
// answered is false when b holds no answer to seq.
func parseNeighReply(b []byte, seq uint32) (state uint16, ok, answered bool, err error) {
	msgs, err := ParseNetlink(b)
	if err != nil {
		return 0, false, false, err
	}
	for _, m := range msgs {
		if m.Seq != seq {
			continue
		}
		if m.Type == nlmsgError {
			err := netlinkError(m.Data)
			if errors.Is(err, syscall.ENOENT) {
				return 0, false, true, nil
			}
			return 0, false, true, err
		}
		_, st, ok := parseNeigh(m.Data)
		if !ok {
			return 0, false, true, fmt.Errorf("%w: neighbour message of %d bytes", ErrNetlinkTruncated, len(m.Data))
		}
		return st, true, true, nil
	}
	return 0, false, false, nil
}
