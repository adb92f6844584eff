package probe_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

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

// BenchmarkTLSLayer compares a probe with the TLS layer (connect, then a
// verified TLS 1.3 handshake) with a bare tls.Dialer doing the same on the
// same loopback server in the same run: the layer must cost no more than
// the handshake itself. ECDSA P-256 certificates, session resumption off
// on both sides.
func BenchmarkTLSLayer(b *testing.B) {
	ca := testnet.NewCA(b, "bench CA")
	ln := testnet.ServeTLS(b, &tls.Config{Certificates: []tls.Certificate{ca.Issue(b, testnet.Cert{Names: []string{"127.0.0.1"}})}}, nil)
	ap := testnet.AddrPort(ln)
	b.Run("bare-tls.Dial", func(b *testing.B) {
		d := tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}
		for b.Loop() {
			c, err := d.DialContext(context.Background(), "tcp", ap.String())
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("probe-tls-layer", func(b *testing.B) {
		opt := probe.Options{TLS: &probe.TLSOptions{RootCAs: ca.Pool()}}
		for b.Loop() {
			if r := probe.Run(context.Background(), endpoint.FromAddrPort(ap), opt); !r.Ready() {
				b.Fatalf("not ready: %v %+v", r.Err, r.TLS)
			}
		}
	})
	// Both in turn in each iteration, so a machine whose load changes
	// during the run weighs on both alike: bare-ns/op and layer-ns/op,
	// and their ratio.
	b.Run("interleaved", func(b *testing.B) {
		d := tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}
		opt := probe.Options{TLS: &probe.TLSOptions{RootCAs: ca.Pool()}}
		var bare, layer time.Duration
		for b.Loop() {
			t0 := time.Now()
			c, err := d.DialContext(context.Background(), "tcp", ap.String())
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
			t1 := time.Now()
			if r := probe.Run(context.Background(), endpoint.FromAddrPort(ap), opt); !r.Ready() {
				b.Fatalf("not ready: %v %+v", r.Err, r.TLS)
			}
			bare, layer = bare+t1.Sub(t0), layer+time.Since(t1)
		}
		b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "bare-ns/op")
		b.ReportMetric(float64(layer.Nanoseconds())/float64(b.N), "layer-ns/op")
		b.ReportMetric(float64(layer)/float64(bare), "layer/bare")
	})
}
