package sys

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// rtnetlink multicast groups of the changes that decide how a packet leaves
// (linux/rtnetlink.h): links, addresses and routes of both families.
const rtGroups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE

// ErrNoFirewallEvents means the nf_tables notifications could not be joined
// (they need CAP_NET_ADMIN); routes, addresses and links are still watched.
var ErrNoFirewallEvents = errors.New("sys: cannot watch nf_tables changes (needs CAP_NET_ADMIN)")

// SubscribeNet calls fn for every change the kernel announces to the
// calling thread's network namespace, until ctx ends. Sockets are made on
// the calling thread, so a caller inside a namespace (netns Do) watches that
// namespace. fn is called from two goroutines (rtnetlink and nf_tables) and
// must be safe for that. When the nf_tables group cannot be joined, warn is
// called once with ErrNoFirewallEvents and the rest goes on. A receive
// buffer overflow (ENOBUFS: changes were lost) is reported as an event of
// Kind "overflow".
func SubscribeNet(ctx context.Context, fn func(NetEvent), warn func(error)) error {
	rt, err := subscribe(unix.NETLINK_ROUTE, rtGroups, 0)
	if err != nil {
		return err
	}
	nft, err := subscribe(unix.NETLINK_NETFILTER, 0, unix.NFNLGRP_NFTABLES)
	if err != nil {
		warn(fmt.Errorf("%w: %v", ErrNoFirewallEvents, err))
		nft = -1
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return readEvents(ctx, rt, fn) })
	if nft >= 0 {
		g.Go(func() error { return readEvents(ctx, nft, fn) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// subscribe opens a netlink socket of proto joined to groups (a bit mask of
// the old style) and to group (a number, for groups above 32).
func subscribe(proto int, groups uint32, group int) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, fmt.Errorf("sys: netlink socket (protocol %d): %w", proto, os.NewSyscallError("socket", err))
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("sys: netlink subscribe (protocol %d): %w", proto, os.NewSyscallError(op, err))
	}
	// A receive timeout bounds each read, so an ended context is noticed.
	tv := unix.NsecToTimeval(int64(100e6))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("setsockopt", err)
	}
	// A bigger buffer than the default makes a burst of changes (a
	// container starting: dozens of routes) less likely to overflow.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return fail("bind", err)
	}
	if group > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, group); err != nil {
			return fail("setsockopt", err)
		}
	}
	return fd, nil
}

func readEvents(ctx context.Context, fd int, fn func(NetEvent)) error {
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err == unix.ENOBUFS:
			fn(NetEvent{Kind: "overflow"})
			continue
		case err != nil:
			return fmt.Errorf("sys: netlink receive: %w", os.NewSyscallError("recvfrom", err))
		}
		msgs, err := ParseNetlink(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if ev, ok, err := ParseNetEvent(m); err == nil && ok {
				fn(ev)
			}
		}
	}
	return nil
}
