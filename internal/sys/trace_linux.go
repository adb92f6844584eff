package sys

import (
	"context"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeHop sends one UDP datagram to dst with the given TTL (hop limit) and
// waits up to wait for the ICMP error it provokes, read from the socket's
// error queue (IP_RECVERR), which needs no privilege. A Hop with a zero From
// means nobody answered. The socket belongs to the calling thread's network
// namespace.
func ProbeHop(ctx context.Context, dst netip.AddrPort, ttl int, wait time.Duration) (Hop, error) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	family, level := unix.AF_INET6, unix.IPPROTO_IPV6
	recvErr, ttlOpt := unix.IPV6_RECVERR, unix.IPV6_UNICAST_HOPS
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()}
	if dst.Addr().Is4() {
		family, level, recvErr, ttlOpt = unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR, unix.IP_TTL
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return Hop{}, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, level, recvErr, 1); err != nil {
		return Hop{}, os.NewSyscallError("setsockopt", err)
	}
	if err := unix.SetsockoptInt(fd, level, ttlOpt, ttl); err != nil {
		return Hop{}, os.NewSyscallError("setsockopt", err)
	}
	h := Hop{TTL: ttl}
	start := time.Now()
	if err := unix.Sendto(fd, []byte("reach path probe"), 0, sa); err != nil {
		// A local failure (no route, no neighbour) is an answer too.
		if errno, ok := err.(unix.Errno); ok {
			h.What, h.Errno = "local error: "+errno.Error(), errno
			return h, nil
		}
		return h, os.NewSyscallError("sendto", err)
	}
	deadline := start.Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf, oob := make([]byte, 512), make([]byte, 512)
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return h, nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLERR}}
		n, err := unix.Poll(fds, int(min(left, 50*time.Millisecond)/time.Millisecond)+1)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return h, os.NewSyscallError("poll", err)
		}
		_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE)
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return h, os.NewSyscallError("recvmsg", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return h, err
		}
		for _, m := range msgs {
			if m.Header.Level != int32(level) || m.Header.Type != int32(recvErr) {
				continue
			}
			got, err := parseHop(m.Data)
			if err != nil {
				return h, err
			}
			got.TTL, got.RTT = ttl, time.Since(start)
			return got, nil
		}
	}
}
