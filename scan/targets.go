package scan

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// MaxHosts bounds how many addresses one scan expands to.
const MaxHosts = 1 << 20

// Expand turns parsed targets into the hosts to scan: ranges are expanded,
// names resolved (the first address, as nmap does), duplicates and excluded
// addresses dropped. A name that does not resolve fails the whole call, with
// the probe's typed error. Exclusions are addresses, CIDRs or ranges: a
// name among them is ErrExcludeName (it is not resolved, so it would
// exclude nothing).
func Expand(ctx context.Context, hosts, exclude []endpoint.Hosts, resolver probe.Options) ([]Target, error) {
	for _, x := range exclude {
		if x.IsName() {
			return nil, fmt.Errorf("%w: %s is not resolved for exclusions, so it would exclude nothing; give its address, a CIDR or a range", ErrExcludeName, x.Name)
		}
	}
	seen := map[netip.Addr]bool{}
	var out []Target
	excluded := func(a netip.Addr) bool {
		for _, x := range exclude {
			if x.Contains(a) {
				return true
			}
		}
		return false
	}
	add := func(t Target) error {
		if seen[t.Addr] || excluded(t.Addr) {
			return nil
		}
		if len(out) == MaxHosts {
			return fmt.Errorf("%w: more than %d; split the scan into smaller blocks", ErrTooBig, MaxHosts)
		}
		seen[t.Addr] = true
		out = append(out, t)
		return nil
	}
	for _, h := range hosts {
		if h.IsName() {
			addrs, err := probe.Resolve(ctx, h.Name, resolver)
			if err != nil {
				return nil, fmt.Errorf("%s did not resolve: %w; check the name (or give an address), and run `reach check %s:PORT` to see the resolver's answer for every address family", h.Name, err, h.Name)
			}
			if err := add(Target{Addr: addrs[0], Name: h.Name}); err != nil {
				return nil, err
			}
			continue
		}
		// A zone naming no interface, or none on a link-local address,
		// would make every connect fail at once, which must not read as
		// "filtered".
		if _, err := zoneIndex(h.First.Zone()); err != nil {
			return nil, err
		}
		if h.First.Zone() == "" && (h.First.IsLinkLocalUnicast() || h.Last.IsLinkLocalUnicast()) && h.First.Is6() {
			return nil, fmt.Errorf("%w: %s is link-local: give its interface as a zone, one address at a time (e.g. fe80::1%%eth0; see ip link)", ErrZone, h)
		}
		if h.Len() > MaxHosts {
			return nil, fmt.Errorf("%w: %s holds more than %d addresses; split the scan into smaller blocks", ErrTooBig, h, MaxHosts)
		}
		for a := range h.All() {
			if err := add(Target{Addr: a}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// zoneIndex is the index of the interface an IPv6 zone names, by name or
// number; 0 for no zone.
func zoneIndex(zone string) (int, error) {
	if zone == "" {
		return 0, nil
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return ifi.Index, nil
	}
	if n, err := strconv.Atoi(zone); err == nil {
		if ifi, err := net.InterfaceByIndex(n); err == nil {
			return ifi.Index, nil
		}
	}
	return 0, fmt.Errorf("%w: no network interface %q (see ip link; e.g. fe80::1%%eth0)", ErrZone, zone)
}

// zoneID is the scope id of a zone Expand has checked.
func zoneID(zone string) uint32 {
	i, _ := zoneIndex(zone)
	return uint32(i)
}
