package doctor_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
)

// BenchmarkRefusedLocal diagnoses a refused port on this host's loopback:
// the whole ladder, sockets and firewall included (issue #4: under 200 ms).
func BenchmarkRefusedLocal(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ep := endpoint.FromAddrPort(ln.Addr().(*net.TCPAddr).AddrPort())
	ln.Close()
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
			port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
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
