package doctor_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// BenchmarkRefusedLocal diagnoses a refused port on this host's loopback:
// the whole ladder, sockets and firewall included (issue #4: under 200 ms).
func BenchmarkRefusedLocal(b *testing.B) {
	ep := endpoint.FromAddrPort(testnet.ClosedPort(b))
	b.ResetTimer()
	for b.Loop() {
		r := doctor.Run(context.Background(), ep, doctor.Options{Timeout: 3 * time.Second})
		if r.Class != "refused" {
			b.Fatalf("class %s, want refused", r.Class)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/diagnosis")
}

// BenchmarkDropped diagnoses, from a client, a server whose firewall drops
// the port (issue #4: within --timeout plus 20%).
func BenchmarkDropped(b *testing.B) {
	for _, timeout := range []time.Duration{time.Second, 3 * time.Second} {
		b.Run(fmt.Sprint(timeout), func(b *testing.B) {
			p := newPair(b)
			ln := p.srv.Listen(b, "tcp", "0.0.0.0:0")
			port := portOf(ln)
			p.srv.Iptables(b, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
			ep := endpoint.FromAddrPort(netip.AddrPortFrom(p.srvAddr, port))
			opt := doctor.Options{Timeout: timeout, Dial: p.cli.DialContext, Enter: p.cli.Do}
			var worst time.Duration
			for b.Loop() {
				start := time.Now()
				r := doctor.Run(context.Background(), ep, opt)
				worst = max(worst, time.Since(start))
				if r.Cause != doctor.FirewallDrop {
					b.Fatalf("cause %s, want firewall-drop", r.Cause)
				}
			}
			b.ReportMetric(float64(worst)/float64(timeout), "worst/timeout")
		})
	}
}

// BenchmarkThroughNAT diagnoses, on a Docker host with three containers, a
// published port whose server listens on its container's loopback: the
// containers' namespaces listed, the rules read and walked.
func BenchmarkThroughNAT(b *testing.B) {
	local80 := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:80")}
	d := netlab.New(b).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{
		{Name: "web", Listen: local80, Publish: []netlab.Publish{{HostPort: 8080, ContainerPort: 80}}},
		{Name: "db", Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:5432")}},
		{Name: "cache", Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:6379")}},
	}})
	ep := endpoint.FromAddrPort(netip.AddrPortFrom(d.HostAddr, 8080))
	opt := doctor.Options{Timeout: 3 * time.Second, Dial: d.Host.DialContext, Enter: d.Host.Do}
	for b.Loop() {
		if r := doctor.Run(context.Background(), ep, opt); r.Cause != doctor.LoopbackOnly {
			b.Fatalf("cause %s, want loopback-only", r.Cause)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/diagnosis")
}
