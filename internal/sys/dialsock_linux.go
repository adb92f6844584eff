package sys

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DialSocket prepares the socket a net.Dialer makes for one probe, as its
// Control function: ICMP errors are queued (IP_RECVERR), the socket is bound
// to Device (SO_BINDTODEVICE) and, with NoPort, a source address is bound
// without picking a port (IP_BIND_ADDRESS_NO_PORT: connect picks it, so the
// port is shared with other destinations). It keeps a second descriptor of
// the socket, so the ICMP error behind a failed connect can still be read
// after net has closed its own. Use one per dial, and Close it.
type DialSocket struct {
	Device string // interface name for SO_BINDTODEVICE; "" for none
	NoPort bool   // a source address is bound: defer its port to connect

	dup  int // the second descriptor, when held
	held bool
}

// Control has the shape of net.Dialer.Control. A failure to bind to Device
// fails the dial with an *os.SyscallError ("setsockopt SO_BINDTODEVICE").
func (s *DialSocket) Control(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = s.setup(int(fd), strings.HasSuffix(network, "6")) })
	if err != nil {
		return err
	}
	return serr
}

func (s *DialSocket) setup(fd int, v6 bool) error {
	level, recvErr := unix.IPPROTO_IP, unix.IP_RECVERR
	if v6 {
		level, recvErr = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	// A failure here only loses the ICMP detail, as in NewTCPSocket.
	unix.SetsockoptInt(fd, level, recvErr, 1)
	if s.NoPort {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}
	if s.Device != "" {
		if err := unix.BindToDevice(fd, s.Device); err != nil {
			return os.NewSyscallError("setsockopt SO_BINDTODEVICE", err)
		}
	}
	s.Close() // a Control called again (another address) drops the last socket
	if dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0); err == nil {
		s.dup, s.held = dup, true
	}
	return nil
}

// Reads reports whether Unreachable can read the socket's error queue, so
// that finding nothing there means no ICMP error came.
func (s *DialSocket) Reads() bool { return s.held }

// Unreachable returns the latest ICMP destination-unreachable queued on the
// socket about a connection to port (see ErrQueue.Unreachable).
func (s *DialSocket) Unreachable(port uint16) (ExtendedErr, bool) {
	if !s.held {
		return ExtendedErr{}, false
	}
	q := errQueues.Get().(*ErrQueue)
	defer errQueues.Put(q)
	return q.Unreachable(s.dup, port)
}

// Connected makes a connected socket report ICMP errors as any other does:
// with IP_RECVERR on, an ICMP error a router sends about a connection that
// lives on (a route flapping) fails its next read or write at once, where
// TCP would otherwise retransmit through it.
func (s *DialSocket) Connected(v6 bool) {
	if !s.held {
		return
	}
	if v6 {
		unix.SetsockoptInt(s.dup, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 0)
	} else {
		unix.SetsockoptInt(s.dup, unix.IPPROTO_IP, unix.IP_RECVERR, 0)
	}
}

// Close releases the second descriptor; the connection, if any, stays open.
func (s *DialSocket) Close() {
	if s.held {
		unix.Close(s.dup)
		s.held = false
	}
}

// TryBind checks that a TCP connection could leave from src (when valid)
// through device (when not ""): it binds a scratch socket as a dial would
// and closes it. The error is an *os.SyscallError naming the step that
// failed: "setsockopt SO_BINDTODEVICE" (ENODEV: no such interface) or
// "bind" (EADDRNOTAVAIL: not an address of this host). Local routes and
// net.ipv4.ip_nonlocal_bind count, as they do for a real connection.
func TryBind(src netip.Addr, device string) error {
	domain := unix.AF_INET
	if src.Is6() && !src.Is4In6() {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if device != "" {
		if err := unix.BindToDevice(fd, device); err != nil {
			return os.NewSyscallError("setsockopt SO_BINDTODEVICE", err)
		}
	}
	if !src.IsValid() {
		return nil
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	if err := unix.Bind(fd, sockaddr(src.Unmap(), 0)); err != nil {
		return os.NewSyscallError("bind", err)
	}
	return nil
}

// sockaddr is addr:port as a unix.Sockaddr; a zone names an interface.
func sockaddr(addr netip.Addr, port int) unix.Sockaddr {
	if addr.Is4() {
		return &unix.SockaddrInet4{Addr: addr.As4(), Port: port}
	}
	sa := &unix.SockaddrInet6{Addr: addr.As16(), Port: port}
	if z := addr.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.Atoi(z); err == nil && n > 0 {
			sa.ZoneId = uint32(n)
		}
	}
	return sa
}

// BindSource binds fd, one of NewTCPSocket's, to src without a port
// (IP_BIND_ADDRESS_NO_PORT): connect picks the port, per destination, so a
// scan from one source address is not limited to one port per socket.
func BindSource(fd int, src netip.Addr) syscall.Errno {
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	return errnoOf(unix.Bind(fd, sockaddr(src, 0)))
}

// BindDevice binds fd to a network interface (SO_BINDTODEVICE): its packets
// leave by that interface, whatever the routes prefer.
func BindDevice(fd int, name string) syscall.Errno {
	return errnoOf(unix.BindToDevice(fd, name))
}
