package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/sockets"
)

// Cause names why a bind failed.
type Cause string

// The causes a BindError explains.
const (
	CauseInUse      Cause = "in-use"     // EADDRINUSE: another socket holds the port
	CausePrivileged Cause = "privileged" // EACCES on a port below net.ipv4.ip_unprivileged_port_start
	CauseNotLocal   Cause = "not-local"  // EADDRNOTAVAIL: the address is not on this host
	CauseExcluded   Cause = "excluded"   // WSAEACCES on Windows: a port range the system reserved
	CauseOther      Cause = "other"      // anything else (bad name, address family off, ...)
)

// BindError explains why an address could not be bound. errors.Is works
// with the errno (syscall.EADDRINUSE, ...), errors.As with *net.OpError.
type BindError struct {
	Addr  string         // the address as configured
	Bind  netip.AddrPort // the address the bind tried (a name resolved), if known
	Cause Cause
	// Holders are the listening sockets that hold the port, with their
	// processes (CauseInUse). Empty when none is visible; HolderErr says
	// why when the lookup itself failed.
	Holders   []sockets.Socket
	HolderErr error
	// Overlaps is an earlier address of the same Config.Listen that took
	// the port (a wildcard and a specific address, or one address written
	// twice): the server got in its own way (CauseInUse).
	Overlaps string
	// HostAddrs are this host's addresses (CauseNotLocal).
	HostAddrs []netip.Prefix
	// IPv6Off is set when the address is IPv6 and IPv6 is switched off
	// here (net.ipv6.conf.all.disable_ipv6 = 1; CauseNotLocal).
	IPv6Off bool
	// PortStart is net.ipv4.ip_unprivileged_port_start, the first port an
	// unprivileged process may bind; UID is our effective uid (CausePrivileged).
	PortStart int
	UID       int
	Errno     syscall.Errno // 0 when the failure was not a system call's
	Err       error
}

func (e *BindError) Unwrap() error { return e.Err }

// Is matches the errno by its syscall name on every system, also where
// the error it wraps carries a Winsock number (Windows' WSAEADDRINUSE is
// syscall.EADDRINUSE here).
func (e *BindError) Is(target error) bool { return e.Errno != 0 && target == e.Errno }

func (e *BindError) Error() string {
	head := "listen " + e.Addr
	switch e.Cause {
	case CauseInUse:
		switch {
		case e.Overlaps != "":
			return fmt.Sprintf("%s: address already in use: it overlaps %s, given before it to the same server, which already holds port %d there", head, e.Overlaps, e.Bind.Port())
		case len(e.Holders) > 0 && e.Holders[0].State != sockets.StateListen:
			return fmt.Sprintf("%s: address already in use: held by %s, whose socket is not listening (state %s): bound to the port, or a connection using it as its source port", head, owners(e.Holders), e.Holders[0].State)
		case len(e.Holders) > 0:
			return fmt.Sprintf("%s: address already in use: held by %s", head, owners(e.Holders))
		case e.HolderErr != nil:
			return fmt.Sprintf("%s: address already in use (could not look up who holds it: %v)", head, e.HolderErr)
		default:
			return fmt.Sprintf("%s: address already in use, but no listening socket on port %d is visible in this network namespace", head, e.Bind.Port())
		}
	case CauseExcluded:
		return fmt.Sprintf("%s: permission denied: Windows keeps port %d from this program: it lies in an excluded port range "+
			"(Hyper-V, WSL 2 and Docker Desktop reserve ranges at boot), or another program holds it exclusively", head, e.Bind.Port())
	case CausePrivileged:
		return fmt.Sprintf("%s: permission denied: ports below %d are privileged here (net.ipv4.ip_unprivileged_port_start = %d), and this process (uid %d) lacks CAP_NET_BIND_SERVICE",
			head, e.PortStart, e.PortStart, e.UID)
	case CauseNotLocal:
		if e.IPv6Off {
			return fmt.Sprintf("%s: cannot assign requested address: IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6 = 1), so it has no %s", head, e.Bind.Addr())
		}
		return fmt.Sprintf("%s: cannot assign requested address: %s is not an address of this host (it has %s)", head, e.Bind.Addr(), prefixList(e.HostAddrs))
	}
	return e.Err.Error()
}

// Fix says what to do about the failure, one suggestion a line; nil when
// there is nothing specific to suggest.
func (e *BindError) Fix() []string {
	port := e.Bind.Port()
	switch e.Cause {
	case CauseInUse:
		if e.Overlaps != "" {
			return []string{fmt.Sprintf("give only one of %s and %s: an address without a host (:%d), 0.0.0.0 or [::] already listens on every address", e.Overlaps, e.Addr, port)}
		}
		var fix []string
		var pids []string // each once: a process may hold the port on several addresses
		for _, s := range e.Holders {
			for _, p := range s.Processes {
				if pid := strconv.Itoa(p.PID); !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
		}
		switch {
		case len(pids) > 0:
			fix = append(fix, fmt.Sprintf("stop %s if it should not be running (kill %s)", owners(e.Holders), strings.Join(pids, " ")))
		case len(e.Holders) > 0:
			fix = append(fix, fmt.Sprintf("see which process it is as root: sudo reach ports --port %d", port))
		case goos == "windows":
			fix = append(fix, fmt.Sprintf("see who holds it: netstat -ano | findstr :%d (the last column is the pid)", port))
		case goos == "darwin":
			fix = append(fix, fmt.Sprintf("see who holds it, as root: sudo lsof -nP -iTCP:%d", port))
		default:
			fix = append(fix, fmt.Sprintf("the holder may be in another network namespace (a container) or hold the port without listening: ss -tanp 'sport = :%d'", port))
		}
		return append(fix, "or use another port (port 0 picks a free one)")
	case CauseExcluded:
		return []string{
			"see the reserved ranges: netsh interface ipv4 show excludedportrange protocol=tcp (and ipv6)",
			"use a port outside them (port 0 picks a free one)",
			"or, if WinNAT reserved it, restart it to free the range: net stop winnat, bind, net start winnat (as administrator)",
		}
	case CausePrivileged:
		alt := "8080"
		if port != 0 {
			alt = strconv.Itoa(max(int(port)+8000, e.PortStart)) // 80 -> 8080, 443 -> 8443
		}
		exe, err := os.Executable()
		if err != nil {
			exe = "/path/to/program"
		}
		return []string{
			fmt.Sprintf("use a port of %d or more (e.g. %s) and, if clients need port %d, redirect it in the firewall", e.PortStart, alt, port),
			fmt.Sprintf("or grant the capability to the program: sudo setcap cap_net_bind_service=+ep %s", exe),
			"or, under systemd, add to the unit: AmbientCapabilities=CAP_NET_BIND_SERVICE",
			fmt.Sprintf("or let unprivileged processes bind from port %d (per network namespace): sudo sysctl net.ipv4.ip_unprivileged_port_start=%d", port, port),
		}
	case CauseNotLocal:
		if e.IPv6Off {
			v4 := "0.0.0.0"
			if e.Bind.Addr().IsLoopback() {
				v4 = "127.0.0.1"
			}
			return []string{
				fmt.Sprintf("listen on an IPv4 address instead: %s", netip.AddrPortFrom(netip.MustParseAddr(v4), e.Bind.Port())),
				"or turn IPv6 on: sudo sysctl net.ipv6.conf.all.disable_ipv6=0 (and net.ipv6.conf.IFACE.disable_ipv6=0 for the interface, lo for ::1)",
			}
		}
		return []string{
			"listen on one of this host's addresses, or on 0.0.0.0 (IPv4) / [::] (IPv6) for all of them",
			"if the address is added later (keepalived, DHCP), allow binding it early: sudo sysctl net.ipv4.ip_nonlocal_bind=1 (net.ipv6.ip_nonlocal_bind=1 for IPv6)",
		}
	}
	return nil
}

// goos is the system whose remedies a BindError suggests; tests set it.
var goos = runtime.GOOS

// explainBind turns a listen error into a *BindError, looking up the
// evidence its cause needs.
func explainBind(ctx context.Context, addr string, err error) *BindError {
	e := &BindError{Addr: addr, Cause: CauseOther, Err: err}
	var op *net.OpError
	if errors.As(err, &op) {
		if ta, ok := op.Addr.(*net.TCPAddr); ok {
			e.Bind = ta.AddrPort()
			if ta.IP == nil { // ":PORT": Go binds the wildcard, [::] dual-stack
				e.Bind = netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(ta.Port))
			}
		}
	}
	e.Bind = netip.AddrPortFrom(e.Bind.Addr().Unmap(), e.Bind.Port())
	if !errors.As(err, &e.Errno) || !e.Bind.IsValid() {
		return e
	}
	e.Errno = sys.Errno(e.Errno) // WSAEADDRINUSE on Windows
	switch e.Errno {
	case syscall.EADDRINUSE:
		e.Cause = CauseInUse
		socks, lerr := sockets.Listening(ctx, e.Bind.Port())
		e.Holders, e.HolderErr = conflicting(socks, e.Bind.Addr()), lerr
		if lerr == nil && len(e.Holders) == 0 {
			// No listener: a socket bound but not listening, or a
			// connection using the port as its source, holds it.
			t, err := sockets.List(ctx, sockets.Options{All: true, Port: e.Bind.Port()})
			e.Holders, e.HolderErr = conflicting(t.Sockets, e.Bind.Addr()), err
		}
	case syscall.EACCES:
		if goos == "windows" {
			// Windows has no privileged ports: access denied on bind is a
			// reserved range or an exclusive holder.
			e.Cause = CauseExcluded
			break
		}
		start, ok := unprivilegedPortStart()
		if !ok {
			start = 1024
		}
		if int(e.Bind.Port()) < start {
			e.Cause, e.PortStart, e.UID = CausePrivileged, start, os.Geteuid()
		}
	case syscall.EADDRNOTAVAIL:
		e.Cause = CauseNotLocal
		e.HostAddrs, _ = sockets.Addresses() // without them the message still names the address
		e.IPv6Off = e.Bind.Addr().Is6() && ipv6Disabled()
	}
	return e
}

// overlapping returns the first of the bound listeners whose address
// clashes with b, as its configured address (listen[i] for bound[i]).
func overlapping(listen []string, bound []net.Listener, b netip.AddrPort) string {
	for i, ln := range bound {
		ta, ok := ln.Addr().(*net.TCPAddr)
		if !ok || ta.AddrPort().Port() != b.Port() {
			continue
		}
		a := ta.AddrPort().Addr().Unmap()
		if a == b.Addr() || a.IsUnspecified() || b.Addr().IsUnspecified() {
			return listen[i]
		}
	}
	return ""
}

// conflicting keeps the sockets whose address clashes with addr: the same
// address, or a wildcard on either side. If none does, it keeps them all:
// the kernel said the port is taken, and they are the best evidence.
func conflicting(socks []sockets.Socket, addr netip.Addr) []sockets.Socket {
	var out []sockets.Socket
	for _, s := range socks {
		a := s.Local.Addr().Unmap()
		if a == addr || a.IsUnspecified() || addr.IsUnspecified() {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return socks
	}
	return out
}

// owners names the processes holding sockets, each once.
func owners(socks []sockets.Socket) string {
	var names []string
	seen := map[string]bool{}
	for _, s := range socks {
		if o := s.Owner(); !seen[o] {
			seen[o] = true
			names = append(names, o)
		}
	}
	return strings.Join(names, ", ")
}

func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "no addresses that could be listed"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Addr().String()
	}
	return strings.Join(s, ", ")
}
