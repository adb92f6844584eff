package cli

import (
	"errors"
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// localFlags are --source and --interface: where connections leave from.
type localFlags struct {
	source, iface string
}

func (l *localFlags) add(f *pflag.FlagSet) {
	f.StringVar(&l.source, "source", "", "leave from this `ADDR`ess of this host (targets of its family only); default: the route's choice")
	f.StringVar(&l.iface, "interface", "", "leave by this network interface `NAME` (SO_BINDTODEVICE), whatever the routes prefer")
}

// parse reads the flags; with here set it also checks that this host has
// the address and the interface (probe.CheckLocal), so a wrong value is a
// usage error at once instead of a failed probe per target.
func (l *localFlags) parse(network string, here bool) (netip.Addr, string, error) {
	var src netip.Addr
	if l.source != "" {
		a, err := netip.ParseAddr(l.source)
		if err != nil {
			return src, "", usageErrorf("--source %q: give an IP address of this host (see ip address), such as 198.18.0.1 or fd00::1", l.source)
		}
		src = a.Unmap()
	}
	if l.iface != "" && !probe.ValidInterfaceName(l.iface) {
		return src, "", usageErrorf("--interface %q: give a network interface name (see ip link), such as eth0", l.iface)
	}
	if here {
		if err := probe.CheckLocal(probe.Options{Network: network, Source: src, Interface: l.iface}); err != nil {
			return src, "", &UsageError{Err: err}
		}
	}
	return src, l.iface, nil
}

// sameFamily refuses targets given as addresses of the other family than
// src: no connection leaves an IPv4 address for an IPv6 one.
func sameFamily(src netip.Addr, eps []endpoint.Endpoint) error {
	if !src.IsValid() {
		return nil
	}
	for _, ep := range eps {
		if a, ok := ep.Addr(); ok && a.Unmap().Is4() != src.Is4() {
			return &UsageError{Err: &probe.SourceError{Source: src, Target: a, Err: probe.ErrSourceFamily}}
		}
	}
	return nil
}

// isLocalError reports the errors a source or interface this host cannot
// use gives: the user's to fix, like a usage error.
func isLocalError(err error) bool {
	var se *probe.SourceError
	var ie *probe.InterfaceError
	return errors.As(err, &se) || errors.As(err, &ie) || errors.Is(err, probe.ErrSourceFamily)
}
