package sys

import (
	"context"
	"fmt"
	"net/netip"
	"os"

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

// Neighbour returns the state of one entry of the calling thread's
// namespace's neighbour table: addr on the interface of index ifindex; ok
// is false when there is none. Unlike a dump of the table, it is never cut
// short by the table changing meanwhile (Linux 4.20 and later).
func Neighbour(ctx context.Context, addr netip.Addr, ifindex int) (state uint16, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, false, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(500e6))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, false, os.NewSyscallError("setsockopt", err)
	}
	seq := netlinkSeq.Add(1)
	if err := unix.Sendto(fd, neighRequest(addr, ifindex, seq), 0, toKernel()); err != nil {
		return 0, false, os.NewSyscallError("sendto", err)
	}
	buf := make([]byte, 4096)
	for range 8 { // the answer is one message; skip the odd stray reply
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false, os.NewSyscallError("recvfrom", err)
		}
		st, ok, answered, err := parseNeighReply(buf[:n], seq)
		if answered || err != nil {
			return st, ok, err
		}
	}
	return 0, false, fmt.Errorf("sys: neighbour %v: no answer from the kernel", addr)
}
