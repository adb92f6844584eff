package scan

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// An unreachable host settles all its ports at once; the others count port
// by port.
func TestReportRate(t *testing.T) {
	addr := netip.MustParseAddr("198.18.0.2")
	tests := []struct {
		name    string
		rep     Report
		settled int64
		rate    float64
	}{
		{"one filtered port in 4s", Report{Ports: 1, Elapsed: 4 * time.Second, Counts: Counts{Filtered: 1},
			Hosts: []Host{{Addr: addr, State: HostNoAnswer}}}, 1, 0.25},
		{"an unreachable host counts whole", Report{Ports: 10000, Elapsed: time.Second, Counts: Counts{Open: 1, Closed: 1980},
			Hosts: []Host{{Addr: addr, State: HostUp}, {Addr: addr.Next(), State: HostUnreachable}}}, 11981, 11981},
		{"no route counts whole too", Report{Ports: 100, Elapsed: 2 * time.Second,
			Hosts: []Host{{Addr: addr, State: HostNoRoute}}}, 100, 50},
		{"no time yet", Report{Ports: 5, Counts: Counts{Open: 5}, Hosts: []Host{{Addr: addr, State: HostUp}}}, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rep.Settled(); got != tt.settled {
				t.Errorf("Settled = %d, want %d", got, tt.settled)
			}
			if got := tt.rep.Rate(); got != tt.rate {
				t.Errorf("Rate = %v, want %v", got, tt.rate)
			}
		})
	}
}

func TestUnscannedRanges(t *testing.T) {
	a := netip.MustParseAddr
	rep := Report{Ports: 2, Hosts: []Host{
		{Addr: a("198.18.0.1"), State: HostUnknown},
		{Addr: a("198.18.0.2"), State: HostUnknown},
		{Addr: a("198.18.0.3"), State: HostUnknown, Counts: Counts{Filtered: 1}, Ports: []Port{{Port: 1, State: Filtered}}},
		{Addr: a("198.18.0.4"), State: HostUnknown},
		{Addr: a("198.18.0.5"), State: HostUp, Counts: Counts{Closed: 1}, Ports: []Port{{Port: 1, State: Closed}}},
		{Addr: a("198.18.0.6"), State: HostUp}, // found up by discovery, no port decided
		{Addr: a("198.18.0.9"), State: HostUnreachable},
		{Addr: a("198.18.0.7"), State: HostUnknown},
		{Addr: a("198.18.0.8"), State: HostUnknown},
		{Addr: a("198.18.0.10"), State: HostNoAnswer},
		{Addr: a("fd00::1"), State: HostUnknown},
	}}
	var got []string
	for _, r := range Ranges(rep.Unscanned()) {
		got = append(got, r.String())
	}
	want := "198.18.0.1-198.18.0.2 198.18.0.4 198.18.0.6-198.18.0.8 fd00::1"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("unscanned ranges %q, want %q", s, want)
	}
	if Ranges(nil) != nil {
		t.Error("Ranges(nil) is not empty")
	}
	rep.HostsOnly = true
	if u := rep.Unscanned(); u != nil {
		t.Errorf("a hosts-only scan has no ports to leave unscanned: %v", u)
	}
}

// A scan larger than its limit is refused before anything is sent: no
// socket, no probe (Scan returns before its engine exists). The default
// limit takes every port of a /24, and not one more host.
func TestHostileScanSize(t *testing.T) {
	all := make([]uint16, 65535)
	for i := range all {
		all[i] = uint16(i + 1)
	}
	hosts := func(n int) []Target {
		out := make([]Target, n)
		for i := range out {
			out[i] = Target{Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})}
		}
		return out
	}
	// A /12 with -p- (the scan) is 68.7 billion probes.
	rep, err := Scan(context.Background(), hosts(1<<20), Options{Ports: all})
	var se *SizeError
	if rep != nil || !errors.As(err, &se) || !errors.Is(err, ErrTooManyProbes) ||
		se.Probes != 68_718_428_160 || se.Limit != DefaultMaxProbes {
		t.Fatalf("a /12 with every port: %v, %v; want a *SizeError of 68718428160 probes", rep, err)
	}
	if want := "scan: 1048576 hosts × 65535 ports is 68718428160 probes, more than the limit of 16777216; " +
		"raise the limit to at least 68718428160 to confirm"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start %q", err, want)
	}
	for _, tc := range []struct {
		hosts int
		ports []uint16
		limit int64
		ok    bool
	}{
		{256, all, 0, true},                // a /24 with every port: the default limit's size
		{257, all, 0, false},               // one host more
		{257, all, 257 * 65535, true},      // confirmed
		{257, all, -1, true},               // no limit
		{2, []uint16{80, 80, 80}, 2, true}, // a port counts once
		{3, []uint16{80, 443}, 5, false},
	} {
		err := checkSize(hosts(tc.hosts), tc.ports, tc.limit)
		if (err == nil) != tc.ok {
			t.Errorf("%d hosts × %d ports, limit %d: %v, want ok %v", tc.hosts, len(tc.ports), tc.limit, err, tc.ok)
		}
	}
}
