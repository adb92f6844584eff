package sys

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// RouteGet asks the kernel how it would route a packet to dst, like
// `ip route get`. When no usable route exists the error wraps the errno the
// kernel answered with: ENETUNREACH (no route), EHOSTUNREACH (an unreachable
// route), EACCES (prohibit) or EINVAL (blackhole); the longest matching
// table entry, if any, is still returned. The netlink socket belongs to the
// calling thread's network namespace.
func RouteGet(ctx context.Context, dst netip.Addr) (Route, error) {
	return RouteGetFrom(ctx, dst, RouteFrom{})
}

// RouteGetFrom is RouteGet for packets from from.Src or leaving by
// from.OIF (ip route get DST from SRC oif DEV), as a connection bound to
// that source or device is routed.
func RouteGetFrom(ctx context.Context, dst netip.Addr, from RouteFrom) (Route, error) {
	dst = dst.Unmap()
	r, err := routeQuery(ctx, dst, from, false)
	if err == nil {
		r.Dst = dst
		if !r.Src.IsValid() {
			r.Src = from.Src.Unmap() // the kernel answers it as RTA_SRC, not the preferred source
		}
		if m, merr := routeQuery(ctx, dst, from, true); merr == nil {
			r.Prefix = m.Prefix
		}
		return r, nil
	}
	err = fmt.Errorf("sys: route to %v: %w", dst, err)
	// Unusable routes make the lookup fail; find the entry that says why.
	var best Route
	family := byte(unix.AF_INET)
	if dst.Is6() {
		family = unix.AF_INET6
	}
	req := routeDump(family)
	derr := NetlinkDump(ctx, unix.NETLINK_ROUTE, rtmGetRoute, req, func(m NetlinkMessage) error {
		e, perr := parseRouteMsg(m.Data)
		if perr != nil {
			return perr
		}
		longer := !best.Prefix.IsValid() || e.Prefix.Bits() > best.Prefix.Bits()
		if e.Prefix.IsValid() && e.Prefix.Contains(dst) && longer {
			best = e
		}
		return nil
	})
	if derr != nil || !best.Prefix.IsValid() {
		return Route{Dst: dst}, err
	}
	best.Dst = dst
	return best, err
}

func routeQuery(ctx context.Context, dst netip.Addr, from RouteFrom, fibMatch bool) (Route, error) {
	if err := ctx.Err(); err != nil {
		return Route{}, err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return Route{}, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(500e6))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return Route{}, os.NewSyscallError("setsockopt", err)
	}
	seq := netlinkSeq.Add(1)
	if err := unix.Sendto(fd, routeRequest(dst, from, seq, fibMatch), 0, toKernel()); err != nil {
		return Route{}, os.NewSyscallError("sendto", err)
	}
	buf := make([]byte, 16<<10)
	for range 8 { // the answer is one message; skip the odd stray reply
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Route{}, os.NewSyscallError("recvfrom", err)
		}
		r, err := parseRouteReply(buf[:n], seq)
		if err != errNoRouteReply {
			return r, err
		}
	}
	return Route{}, errNoRouteReply
}
