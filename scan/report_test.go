package scan

import (
	"net/netip"
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
