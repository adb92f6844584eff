package probe_test

import (
	"context"
	"testing"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// BenchmarkRun probes loopback endpoints: one that accepts, one that
// refuses. A probe's own cost (sockets, options, the ICMP error queue) is
// what moves these numbers; the network adds nothing on loopback.
func BenchmarkRun(b *testing.B) {
	// The client closes first (a reset from the server could beat its
	// connect); loopback reuses its TIME_WAIT ports.
	open := testnet.Serve(b, testnet.Drain)
	closed := testnet.ClosedPort(b)

	for _, bc := range []struct {
		name string
		ep   endpoint.Endpoint
		want probe.Class
	}{
		{"open", endpoint.FromAddrPort(open), probe.Open},
		{"refused", endpoint.FromAddrPort(closed), probe.Refused},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if r := probe.Run(context.Background(), bc.ep, probe.Options{}); r.Class != bc.want {
					b.Fatalf("class %s, want %s: %v", r.Class, bc.want, r.Err)
				}
			}
		})
		// Dial hands the connection over, so it goes through net.Dialer.
		b.Run("dial-"+bc.name, func(b *testing.B) {
			for b.Loop() {
				conn, r := probe.Dial(context.Background(), bc.ep, probe.Options{})
				if r.Class != bc.want {
					b.Fatalf("class %s, want %s: %v", r.Class, bc.want, r.Err)
				}
				if conn != nil {
					conn.Close()
				}
			}
		})
	}
}
