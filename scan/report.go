package scan

import "net/netip"

// Settled counts the host×port pairs decided: every port with a state, and
// all the ports of a host found unreachable, which are decided at once.
func (r *Report) Settled() int64 {
	n := int64(r.Counts.Open + r.Counts.Closed + r.Counts.Filtered)
	for _, h := range r.Hosts {
		if h.State == HostUnreachable || h.State == HostNoRoute {
			n += int64(r.Ports)
		}
	}
	return n
}

// Rate is the host×port pairs settled per second.
func (r *Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Settled()) / r.Elapsed.Seconds()
}

// Unscanned returns, in address order, the hosts whose ports the scan
// ended before deciding any of: state unknown, or up (by discovery) with
// not one port decided. After an interrupt they can be most of a large
// scan, better shown as Ranges than one by one. Hosts found down are not
// among them: their ports are settled with them.
func (r *Report) Unscanned() []Host {
	var out []Host
	for _, h := range r.Hosts {
		if r.IsUnscanned(h) {
			out = append(out, h)
		}
	}
	return out
}

// IsUnscanned reports whether h is one of Unscanned's hosts.
func (r *Report) IsUnscanned(h Host) bool {
	return !r.HostsOnly && r.Ports > 0 && (h.State == HostUnknown || h.State == HostUp) &&
		h.Counts == (Counts{}) && len(h.Ports) == 0
}

// Range is a run of consecutive addresses, First to Last.
type Range struct{ First, Last netip.Addr }

func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Ranges groups hosts, sorted by address, into runs of consecutive
// addresses.
func Ranges(hosts []Host) []Range {
	var out []Range
	for _, h := range hosts {
		a := h.Addr
		if n := len(out); n > 0 && out[n-1].Last.Next() == a {
			out[n-1].Last = a
			continue
		}
		out = append(out, Range{a, a})
	}
	return out
}
