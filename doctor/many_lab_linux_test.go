package doctor_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
)

// Several firewalled targets are diagnosed at once, and reported in the
// order given, with the whole ladder (sockets and firewall rules read in the
// namespace): one after another, three of them took three timeouts.
func TestRunManyFirewalled(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("h")
	var eps []endpoint.Endpoint
	for range 3 {
		ln := h.Listen(t, "tcp", "127.0.0.1:0")
		port := portOf(ln)
		h.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(port)), "-j", "DROP")
		ep, err := endpoint.ParseEndpoint(ln.Addr().String(), 0)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	const timeout = time.Second
	opt := doctor.Options{Timeout: timeout, Dial: h.DialContext, Enter: h.Do}
	start := time.Now()
	n := 0
	for i, r := range doctor.RunMany(t.Context(), eps, opt) {
		if i != n || r.Target != eps[i].String() || r.Cause != doctor.FirewallDrop {
			t.Errorf("report %d (index %d): %s %s; want %s firewall-drop", n, i, r.Target, r.Cause, eps[n])
		}
		n++
	}
	if n != len(eps) {
		t.Errorf("%d reports, want %d", n, len(eps))
	}
	// Each diagnosis takes at most about timeout+15%; in a row they took 3.45s.
	if elapsed, limit := time.Since(start), 2*timeout+timeout/2; elapsed > limit {
		t.Errorf("3 firewalled targets took %v, want under %v: diagnosed one after another?", elapsed, limit)
	}
}
