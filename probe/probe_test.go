package probe_test

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

func TestRunLoopback(t *testing.T) {
	// Open servers keep each connection until the client closes it, so a
	// read wait sees no close however late it starts on a loaded machine.
	open := testnet.Serve(t, testnet.Drain)
	banner := testnet.Serve(t, func(c net.Conn) { c.Write([]byte("SSH-2.0-test\r\n")); io.Copy(io.Discard, c) })
	closer := testnet.Serve(t, testnet.HangUp)
	resetter := testnet.Serve(t, testnet.Reset)
	refused := testnet.ClosedPort(t)
	// A resolver whose DNS server is a refused loopback port: lookups fail for real.
	deadDNS := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, refused.String())
	}}

	tests := []struct {
		name  string
		ep    endpoint.Endpoint
		opt   probe.Options
		class probe.Class
		errno syscall.Errno
	}{
		{"open", endpoint.FromAddrPort(open), probe.Options{}, probe.Open, 0},
		{"open with read wait", endpoint.FromAddrPort(open), probe.Options{ReadWait: 50 * time.Millisecond}, probe.Open, 0},
		{"banner", endpoint.FromAddrPort(banner), probe.Options{ReadWait: time.Second}, probe.Open, 0},
		{"refused", endpoint.FromAddrPort(refused), probe.Options{}, probe.Refused, syscall.ECONNREFUSED},
		{"closed by peer", endpoint.FromAddrPort(closer), probe.Options{ReadWait: time.Second}, probe.ClosedByPeer, 0},
		{"reset", endpoint.FromAddrPort(resetter), probe.Options{ReadWait: time.Second}, probe.Reset, syscall.ECONNRESET},
		{"dns", endpoint.Endpoint{Host: "db.reach.test", Port: 5432}, probe.Options{Resolver: deadDNS, Timeout: 2 * time.Second}, probe.DNS, 0},
		{"bad family", endpoint.Endpoint{Host: "127.0.0.1", Port: 1}, probe.Options{Network: "tcp6"}, probe.LocalError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probe.Run(context.Background(), tt.ep, tt.opt)
			if r.Class != tt.class || r.Errno != tt.errno {
				t.Fatalf("class %s errno %d (%v), want %s errno %d", r.Class, r.Errno, r.Err, tt.class, tt.errno)
			}
			if tt.class == probe.Open {
				if r.Err != nil || !r.Local.IsValid() || r.RTT <= 0 {
					t.Fatalf("open result incomplete: %+v", r)
				}
				return
			}
			var pe *probe.Error
			if !errors.As(r.Err, &pe) || pe.Class != tt.class {
				t.Fatalf("error %v is not a *probe.Error of class %s", r.Err, tt.class)
			}
			if !errors.Is(r.Err, tt.class) {
				t.Fatalf("errors.Is(err, %s) = false", tt.class)
			}
			if tt.errno != 0 && !errors.Is(r.Err, tt.errno) {
				t.Fatalf("errors.Is(err, %v) = false for %v", tt.errno, r.Err)
			}
		})
	}
	if r := probe.Run(context.Background(), endpoint.FromAddrPort(banner), probe.Options{ReadWait: time.Second}); string(r.Banner) != "SSH-2.0-test\r\n" {
		t.Errorf("banner = %q", r.Banner)
	}
}

func TestDNSErrorChain(t *testing.T) {
	refused := testnet.ClosedPort(t)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, refused.String())
	}}
	r := probe.Run(context.Background(), endpoint.Endpoint{Host: "x.reach.test", Port: 1}, probe.Options{Resolver: res, Timeout: 2 * time.Second})
	var dnsErr *net.DNSError
	if !errors.As(r.Err, &dnsErr) || dnsErr.Name != "x.reach.test" {
		t.Fatalf("want *net.DNSError in chain, got %v", r.Err)
	}
	if r.Addr.IsValid() {
		t.Fatalf("no address should have been dialled, got %v", r.Addr)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := probe.Run(ctx, endpoint.FromAddrPort(testnet.ClosedPort(t)), probe.Options{})
	if r.Class != probe.Canceled || r.Class.Retryable() {
		t.Fatalf("class %s (%v), want canceled and not retryable", r.Class, r.Err)
	}
}

// A caller who gives up during name resolution learns nothing about the name:
// the class is canceled, not dns. A resolver that never answers (its DNS
// server is a fake that waits for the context) keeps the lookup in flight.
func TestCanceledDuringLookup(t *testing.T) {
	asked := make(chan struct{}, 1)
	silent := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		select {
		case asked <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-asked; cancel() }()
	r := probe.Run(ctx, endpoint.Endpoint{Host: "db.reach.test", Port: 5432}, probe.Options{Resolver: silent, Timeout: time.Minute})
	if r.Class != probe.Canceled || !errors.Is(r.Err, context.Canceled) {
		t.Fatalf("class %s (%v), want canceled wrapping context.Canceled", r.Class, r.Err)
	}
}

// A fake dialer that never answers before the deadline gives Timeout.
func TestTimeoutWithFakeDialer(t *testing.T) {
	hang := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
	}
	r := probe.Run(context.Background(), endpoint.Endpoint{Host: "198.18.0.1", Port: 80}, probe.Options{Dial: hang, Timeout: 20 * time.Millisecond})
	if r.Class != probe.Timeout || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Fatalf("class %s err %v, want timeout wrapping DeadlineExceeded", r.Class, r.Err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want probe.Class
	}{
		{nil, probe.Open},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, probe.Refused},
		{&net.OpError{Op: "dial", Err: syscall.EHOSTUNREACH}, probe.HostUnreachable},
		{&net.OpError{Op: "dial", Err: syscall.ENETUNREACH}, probe.NetUnreachable},
		{&net.OpError{Op: "dial", Err: syscall.EMFILE}, probe.LocalError},
		{&net.OpError{Op: "dial", Err: syscall.EADDRNOTAVAIL}, probe.LocalError},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, probe.Reset},
		{&net.OpError{Op: "read", Err: syscall.ECONNABORTED}, probe.LocalError},
		// EACCES over IPv6 is taken for ICMPv6 admin-prohibited, over IPv4
		// for a prohibit route.
		{&net.OpError{Op: "dial", Addr: &net.TCPAddr{IP: net.ParseIP("fd00::2")}, Err: syscall.EACCES}, probe.HostUnreachable},
		{&net.OpError{Op: "dial", Addr: &net.TCPAddr{IP: net.ParseIP("198.18.0.2")}, Err: syscall.EACCES}, probe.LocalError},
		{&net.DNSError{Err: "no such host", IsNotFound: true}, probe.DNS},
		{context.Canceled, probe.Canceled},
		{probe.Refused, probe.Refused},
	}
	for _, tt := range tests {
		if got, _ := probe.Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
	if probe.LocalError.Retryable() || !probe.Refused.Retryable() {
		t.Error("retryable table wrong")
	}
	for _, c := range probe.Classes {
		if c.Explain() == "unknown outcome" {
			t.Errorf("class %s has no explanation", c)
		}
	}
}
