package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/reach-tools/reach/internal/sys"
)

// Errors about where a probe leaves from (Options.Source, Options.Interface).
var (
	// ErrSourceFamily: an IPv4 source cannot reach an IPv6 target, and
	// the other way round.
	ErrSourceFamily = errors.New("probe: source and target are of different address families")
	// ErrOwnDialer: Source and Interface are applied by the probe's own
	// dialer, so they cannot be combined with Options.Dial.
	ErrOwnDialer = errors.New("probe: Options.Source and Options.Interface need the probe's own dialer; Options.Dial is set")
)

// HostAddr is an address of one of this host's interfaces.
type HostAddr struct {
	Addr      netip.Addr
	Interface string
}

func (a HostAddr) String() string { return a.Addr.String() + " (" + a.Interface + ")" }

// SourceError says why Options.Source cannot be used: it is not an address
// of this host (the kernel refused to bind it), or its family is not the
// target's. errors.Is finds the errno (EADDRNOTAVAIL) or ErrSourceFamily.
type SourceError struct {
	Source netip.Addr
	Target netip.Addr // the target, when the families differ
	Have   []HostAddr // this host's addresses of Source's family
	Err    error
}

func (e *SourceError) Error() string {
	if e.Target.IsValid() {
		return fmt.Sprintf("source %s is %s and cannot reach %s, which is %s: give a source of the target's family, or none",
			e.Source, family(e.Source), e.Target, family(e.Target))
	}
	s := fmt.Sprintf("%s is not an address of this host: %v", e.Source, e.Err)
	if len(e.Have) == 0 {
		return s + "; this host has no " + family(e.Source) + " address to leave from (see ip address)"
	}
	return s + "; use one of " + joinStrings(e.Have) + ", or no source to let the routes choose"
}

func (e *SourceError) Unwrap() error { return e.Err }

// InterfaceError says why Options.Interface cannot be used: most often no
// interface has that name here (ENODEV), which errors.Is finds.
type InterfaceError struct {
	Name string
	Have []string // this host's interfaces
	Err  error
}

func (e *InterfaceError) Error() string {
	if errors.Is(e.Err, syscall.ENODEV) {
		return fmt.Sprintf("no interface %s: %v; interfaces here: %s", e.Name, e.Err, strings.Join(e.Have, ", "))
	}
	s := fmt.Sprintf("cannot leave by interface %s: %v", e.Name, e.Err)
	if errors.Is(e.Err, syscall.EPERM) {
		s += "; binding to an interface needs CAP_NET_RAW on Linux before 5.7"
	}
	return s
}

func (e *InterfaceError) Unwrap() error { return e.Err }

func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func joinStrings[T fmt.Stringer](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ", ")
}

// ValidInterfaceName reports whether s can name a network interface on
// Linux (dev_valid_name): 1 to 15 bytes, not "." or "..", without '/', ':'
// or white space. Control characters are refused too.
func ValidInterfaceName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// HostAddrs lists the addresses of this host's interfaces (in the network
// namespace of the calling thread), in interface order.
func HostAddrs() ([]HostAddr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []HostAddr
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, HostAddr{Addr: p.Addr(), Interface: ifi.Name})
			}
		}
	}
	return out, nil
}

// CheckLocal reports, before any probe, whether connections can leave from
// opt.Source by opt.Interface (each when set): it binds a scratch socket as
// the probe would. The error is a *SourceError or an *InterfaceError; nil
// when neither is set. A probe reports the same errors itself; checking
// first lets a command refuse the flag at once.
func CheckLocal(opt Options) error {
	if !opt.Source.IsValid() && opt.Interface == "" {
		return nil
	}
	switch n := opt.network(); {
	case n == "tcp4" && !opt.Source.Unmap().Is4() && opt.Source.IsValid(),
		n == "tcp6" && opt.Source.Unmap().Is4():
		return fmt.Errorf("source %s does not suit network %s: %w", opt.Source, n, ErrSourceFamily)
	}
	return localError(sys.TryBind(opt.Source, opt.Interface), opt)
}

// localError turns a failure to bind the source address or the interface
// into a *SourceError or *InterfaceError around the failed system call, and
// returns any other error as it is. What this host has instead is listed
// only then.
func localError(err error, opt Options) error {
	var se *os.SyscallError
	if err == nil || !errors.As(err, &se) {
		if err != nil && opt.Interface != "" && errors.Is(err, sys.ErrUnsupported) {
			return &InterfaceError{Name: opt.Interface, Err: err}
		}
		return err
	}
	switch {
	case se.Syscall == "bind" && opt.Source.IsValid():
		e := &SourceError{Source: opt.Source, Err: se}
		all, _ := HostAddrs()
		for _, a := range all {
			if a.Addr.Is4() == opt.Source.Unmap().Is4() {
				e.Have = append(e.Have, a)
			}
		}
		return e
	case strings.HasSuffix(se.Syscall, "SO_BINDTODEVICE") && opt.Interface != "":
		e := &InterfaceError{Name: opt.Interface, Err: se}
		if ifs, ierr := net.Interfaces(); ierr == nil {
			for _, ifi := range ifs {
				e.Have = append(e.Have, ifi.Name)
			}
		}
		return e
	}
	return err
}
