package sys

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CanConnectOnce reports whether ConnectOnce works on this OS.
const CanConnectOnce = true

// Attempt is the outcome of ConnectOnce.
type Attempt struct {
	// Err is nil when the handshake completed. Otherwise an
	// *os.SyscallError naming the step that failed ("socket", "setsockopt
	// SO_BINDTODEVICE", "bind", "connect"), os.ErrDeadlineExceeded when
	// ctx's deadline came first, or ctx's error when it was canceled.
	Err error
	// Local is the address the connection left from, when it was made.
	Local netip.AddrPort
	// ICMP is the ICMP destination-unreachable queued about a failed
	// attempt (IP_RECVERR), valid when HasICMP. QueueRead says the queue
	// was read (the connect itself failed), so that none came.
	ICMP      ExtendedErr
	HasICMP   bool
	QueueRead bool
}

// ConnectOnce makes one TCP connection attempt to dst and closes the
// socket, for a probe that only needs the outcome. It saves what net.Dialer
// spends on a connection it hands over (poller registration, a goroutine
// park, the peer's address, socket options for a long life) and reads the
// ICMP error behind a failure, which net's sockets do not queue. src (when
// valid) and device (when not "") are bound first, as in DialSocket. It
// waits through the runtime's poller, so a slow target holds no thread.
func ConnectOnce(ctx context.Context, dst netip.AddrPort, src netip.Addr, device string) Attempt {
	if err := ctx.Err(); err != nil {
		return Attempt{Err: err}
	}
	addr := dst.Addr().Unmap()
	v6 := addr.Is6()
	domain, level, recvErr := unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR
	if v6 {
		domain, level, recvErr = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Attempt{Err: os.NewSyscallError("socket", err)}
	}
	unix.SetsockoptInt(fd, level, recvErr, 1) // losing it loses only the ICMP detail
	if device != "" {
		if err := unix.BindToDevice(fd, device); err != nil {
			unix.Close(fd)
			return Attempt{Err: os.NewSyscallError("setsockopt SO_BINDTODEVICE", err)}
		}
	}
	if src.IsValid() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, sockaddr(src.Unmap(), 0)); err != nil {
			unix.Close(fd)
			return Attempt{Err: os.NewSyscallError("bind", err)}
		}
	}
	sa := sockaddr(addr.WithZone(dst.Addr().Zone()), int(dst.Port()))
	err = unix.Connect(fd, sa)
	if err == unix.EINPROGRESS {
		// On loopback and other local paths the answer came inside
		// connect; a poll sees it without the runtime's poller.
		if serr, ok := settled(fd); ok {
			err = serr
		}
	}
	switch err {
	case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
		return wait(ctx, fd, dst.Port())
	}
	a := finish(fd, err, dst.Port())
	unix.Close(fd)
	return a
}

// settled reports whether the connect in progress on fd has finished, and
// its error. It takes no socket lock, as connect() would: an ICMP error that
// arrives while the socket is locked is only noted, and the attempt then
// waits for a retransmission (a second, at least) to fail.
func settled(fd int) (error, bool) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if n, err := unix.Poll(pfd, 0); err != nil || n == 0 || pfd[0].Revents == 0 {
		return nil, false
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err, true
	}
	if soerr != 0 {
		return syscall.Errno(soerr), true
	}
	// Writable without error: connected, unless the wake-up was spurious.
	if _, err := unix.Getpeername(fd); err != nil {
		return nil, false
	}
	return nil, true
}

// finish makes the Attempt of a connect that ended with err.
func finish(fd int, err error, port uint16) Attempt {
	var a Attempt
	if err == nil || err == unix.EISCONN {
		a.Local, _ = LocalAddr(fd)
		return a
	}
	a.Err = os.NewSyscallError("connect", err)
	q := errQueues.Get().(*ErrQueue)
	a.ICMP, a.HasICMP = q.Unreachable(fd, port)
	a.QueueRead = true
	errQueues.Put(q)
	return a
}

// wait waits through the runtime's poller for the connect in progress on fd
// to finish, until ctx ends; it closes fd.
func wait(ctx context.Context, fd int, port uint16) Attempt {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return Attempt{Err: err}
	}
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var a Attempt
	werr := rc.Write(func(fd uintptr) bool {
		err, ok := settled(int(fd))
		if ok {
			a = finish(int(fd), err, port)
		}
		return ok
	})
	switch {
	case werr == nil:
		return a
	case errors.Is(ctx.Err(), context.Canceled):
		return Attempt{Err: ctx.Err()}
	}
	return Attempt{Err: werr} // os.ErrDeadlineExceeded
}
