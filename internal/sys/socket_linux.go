package sys

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The scan engine's sockets: TCP sockets driven by hand, one connect at a
// time, with their errors as bare errnos (no wrapping, no allocation: a
// full scan makes tens of thousands of these calls per second per core).

// NewTCPSocket returns a TCP socket of v6's family that queues ICMP errors
// for ErrQueue (IP_RECVERR). It is non-blocking, unless wait is positive:
// then connect waits up to wait (rounded up to a clock tick) for an answer
// before it returns EINPROGRESS.
func NewTCPSocket(v6 bool, wait time.Duration) (int, syscall.Errno) {
	domain, level, recvErr := unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR
	if v6 {
		domain, level, recvErr = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	flags := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
	if wait <= 0 {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(domain, flags, 0)
	if err != nil {
		return -1, errnoOf(err)
	}
	if wait > 0 {
		tv := unix.NsecToTimeval(wait.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			unix.Close(fd)
			return -1, errnoOf(err)
		}
	}
	// Without the ICMP error, admin-prohibited and host-unreachable give
	// the same errno. A failure here only loses that detail.
	unix.SetsockoptInt(fd, level, recvErr, 1)
	return fd, 0
}

// BindLoopbackPort binds fd to a loopback port of its family, picked now by
// the kernel's automatic bind of a scratch socket. Without SO_REUSEADDR
// nothing can listen on that port meanwhile. On failure fd stays unbound.
func BindLoopbackPort(fd int, v6 bool) {
	domain := unix.AF_INET
	var lo unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if v6 {
		domain = unix.AF_INET6
		lo = &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16()}
	}
	tmp, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	err = unix.Bind(tmp, lo)
	sa, serr := unix.Getsockname(tmp)
	unix.Close(tmp)
	if err != nil || serr != nil {
		return
	}
	unix.Bind(fd, sa)
}

// Connector makes connect(2) calls without allocating: it keeps the raw
// socket address between calls. The zero value is ready; one per goroutine.
type Connector struct {
	in4 unix.RawSockaddrInet4
	in6 unix.RawSockaddrInet6
}

// Connect connects fd to addr:port; scope is an IPv6 zone's interface
// index. It is a raw system call, without the Go scheduler's bookkeeping: a
// connect never waits long here (sockets are non-blocking, or block for at
// most a clock tick), and announcing each of a scan's tens of thousands of
// calls lets the runtime's monitor thread hand the caller's P to another
// thread mid-call: a thread wake-up and a pair of context switches, every
// few hundred microseconds on each core.
func (c *Connector) Connect(fd int, addr netip.Addr, port uint16, scope uint32) syscall.Errno {
	ptr, size := unsafe.Pointer(&c.in4), unsafe.Sizeof(c.in4)
	if addr.Is4() {
		c.in4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&c.in4.Port))[:], port)
	} else {
		c.in6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.As16(), Scope_id: scope}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&c.in6.Port))[:], port)
		ptr, size = unsafe.Pointer(&c.in6), unsafe.Sizeof(c.in6)
	}
	_, _, errno := syscall.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(ptr), size)
	return errno
}

// SetNonblock makes fd non-blocking.
func SetNonblock(fd int) syscall.Errno { return errnoOf(unix.SetNonblock(fd, true)) }

// Close closes fd.
func Close(fd int) { unix.Close(fd) }

// CloseReset closes fd with a reset (SO_LINGER 0), leaving no TIME_WAIT.
func CloseReset(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}

// SocketError returns and clears fd's pending error (SO_ERROR); when that
// cannot be read, the errno of the failure.
func SocketError(fd int) syscall.Errno {
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return errnoOf(err)
	}
	return syscall.Errno(soerr)
}

// LocalAddr returns the address fd is bound to (getsockname).
func LocalAddr(fd int) (netip.AddrPort, bool) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, false
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

// RaiseFileLimit raises the soft limit on open files (RLIMIT_NOFILE) to the
// hard limit, if it can, and returns the soft limit now in force.
func RaiseFileLimit() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	return lim.Cur, nil
}

// errnoOf returns the errno in err, 0 for nil, EINVAL for an error that
// carries none.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if en, ok := err.(syscall.Errno); ok {
		return en
	}
	return syscall.EINVAL
}
