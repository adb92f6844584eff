package scan

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
