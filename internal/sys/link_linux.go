package sys

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Links lists the network interfaces of the calling thread's network
// namespace.
func Links(ctx context.Context) ([]Link, error) {
	var out []Link
	err := NetlinkDump(ctx, unix.NETLINK_ROUTE, rtmGetLink, linkRequest(), func(m NetlinkMessage) error {
		if m.Type != rtmNewLink {
			return nil
		}
		l, err := parseLinkMsg(m.Data)
		if err != nil {
			return err
		}
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sys: links: %w", err)
	}
	return out, nil
}

// NetnsIDs returns, for each of nss, the id the calling thread's network
// namespace gives it (what Link.PeerNetnsID holds for a peer there), or -1
// when it has none: no device of this namespace has a peer there, and
// nothing named it (ip netns set). Asking assigns no id.
func NetnsIDs(ctx context.Context, nss []*Netns) ([]int, error) {
	ids := make([]int, len(nss))
	if len(nss) == 0 {
		return ids, nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("sys: netlink socket: %w", os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(200e6))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("sys: netlink socket: %w", os.NewSyscallError("setsockopt", err))
	}
	buf := make([]byte, 4096)
	for i, ns := range nss {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seq := netlinkSeq.Add(1)
		if err := unix.Sendto(fd, nsidRequest(ns.fd, seq), 0, toKernel()); err != nil {
			return nil, fmt.Errorf("sys: netlink send: %w", os.NewSyscallError("sendto", err))
		}
		answered := false
		for tries := 0; !answered && tries < 8; tries++ { // one answer; skip the odd stray reply
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EINTR || err == unix.EAGAIN {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("sys: netlink receive: %w", os.NewSyscallError("recvfrom", err))
			}
			id, ok, err := parseNsidReply(buf[:n], seq)
			if err != nil {
				return nil, fmt.Errorf("sys: id of network namespace %s: %w", ns.path, err)
			}
			ids[i], answered = id, ok
		}
		if !answered {
			return nil, fmt.Errorf("sys: id of network namespace %s: no answer", ns.path)
		}
	}
	return ids, nil
}
