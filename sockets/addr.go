package sockets

import (
	"fmt"
	"net"
	"net/netip"
)

// Addresses returns the addresses of this host's interfaces, with their
// prefix lengths, in the calling thread's network namespace.
func Addresses() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("sockets: interface addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// IsLocal reports whether a connection to addr stays on this host: a
// loopback or unspecified address, or an address of one of its interfaces.
func IsLocal(addr netip.Addr) (bool, error) {
	addr = addr.Unmap().WithZone("")
	if addr.IsLoopback() || addr.IsUnspecified() {
		return true, nil
	}
	prefixes, err := Addresses()
	if err != nil {
		return false, err
	}
	for _, p := range prefixes {
		if p.Addr().WithZone("") == addr {
			return true, nil
		}
	}
	return false, nil
}
