package scan

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/target"
)

// MaxHosts bounds how many addresses one scan expands to.
const MaxHosts = 1 << 20

// Expand turns parsed targets into the hosts to scan: ranges are expanded,
// names resolved (the first address, as nmap does), duplicates and excluded
// addresses dropped. A name that does not resolve fails the whole call, with
// the probe's typed error.
func Expand(ctx context.Context, hosts, exclude []target.Hosts, resolver probe.Options) ([]Target, error) {
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
			return fmt.Errorf("scan: more than %d hosts; split the scan into smaller blocks", MaxHosts)
		}
		seen[t.Addr] = true
		out = append(out, t)
		return nil
	}
	for _, h := range hosts {
		if h.IsName() {
			addrs, err := probe.Resolve(ctx, h.Name, resolver)
			if err != nil {
				return nil, err
			}
			if err := add(Target{Addr: addrs[0], Name: h.Name}); err != nil {
				return nil, err
			}
			continue
		}
		if h.Len() > MaxHosts {
			return nil, fmt.Errorf("scan: %s holds %d addresses or more, over the limit of %d; split the scan into smaller blocks", h, uint64(MaxHosts)+1, MaxHosts)
		}
		for a := range h.All() {
			if err := add(Target{Addr: a}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
