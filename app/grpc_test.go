package app

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/reach-tools/reach/internal/testnet"
)

// serveGRPC starts s on 127.0.0.1:0 and returns its address.
func serveGRPC(t *testing.T, s *grpc.Server) string {
	t.Helper()
	ln := testnet.Listen(t)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func checkGRPC(t *testing.T, addr string, tlsConf *tls.Config, service string) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tlsConf != nil {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		conn = tc
	}
	return Check(ctx, conn, Request{Protocol: "grpc", Service: service, TLS: tlsConf != nil, Addr: netip.MustParseAddrPort(addr)})
}

func TestGRPCHealth(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("orders.Orders", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("billing.Billing", healthpb.HealthCheckResponse_NOT_SERVING)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	addr := serveGRPC(t, s)

	bare := serveGRPC(t, grpc.NewServer()) // no health service

	// The same health server behind TLS, with ALPN h2 as gRPC wants.
	ts := httptest.NewTLSServer(http.NotFoundHandler()) // only for its certificate
	defer ts.Close()
	tlsS := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: ts.TLS.Certificates})))
	healthpb.RegisterHealthServer(tlsS, hs)
	tlsAddr := serveGRPC(t, tlsS)
	h2 := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}

	httpAddr := hostOf(ts) // an HTTPS server: TLS where gRPC speaks plain HTTP/2
	plainHTTP := httptest.NewServer(http.NotFoundHandler())
	defer plainHTTP.Close()

	for _, tc := range []struct {
		name    string
		addr    string
		tls     *tls.Config
		service string
		ready   bool
		cause   Cause
		state   string
		in      string
	}{
		{"server", addr, nil, "", true, "", "SERVING", "the server is SERVING"},
		{"service serving", addr, nil, "orders.Orders", true, "", "SERVING", ""},
		{"service not serving", addr, nil, "billing.Billing", false, NotReady, "NOT_SERVING", `service "billing.Billing" is NOT_SERVING`},
		{"unknown service", addr, nil, "nope.Nope", false, AppError, "NotFound", `does not know service "nope.Nope"`},
		{"no health service", bare, nil, "", false, AppError, "Unimplemented", "no grpc.health.v1.Health service"},
		{"grpcs", tlsAddr, h2, "orders.Orders", true, "", "SERVING", ""},
		{"grpc on an http/1 port", hostOf(plainHTTP), nil, "", false, WrongProtocol, "http", "plain HTTP answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := checkGRPC(t, tc.addr, tc.tls, tc.service)
			if err != nil {
				t.Fatalf("Check: %v (%+v)", err, r)
			}
			if r.Ready != tc.ready || r.Cause != tc.cause || r.State != tc.state || !strings.Contains(r.Detail, tc.in) {
				t.Fatalf("got ready %v cause %q state %q detail %q; want %v %q %q ...%q...",
					r.Ready, r.Cause, r.State, r.Detail, tc.ready, tc.cause, tc.state, tc.in)
			}
			if r.Protocol != "grpc" || r.FirstByte <= 0 {
				t.Fatalf("protocol %q first byte %v", r.Protocol, r.FirstByte)
			}
		})
	}
	// Go's TLS servers close a plain connection without a word: an I/O
	// error that says what it may be (probe's TLS sniff tells for sure).
	for _, a := range []string{tlsAddr, httpAddr} {
		r, err := checkGRPC(t, a, nil, "")
		if !errors.Is(err, io.EOF) || r.Ready || !strings.Contains(err.Error(), "use grpcs://") {
			t.Errorf("plain gRPC to the TLS port %s: %+v, %v; want io.EOF and a hint", a, r, err)
		}
	}
	// A server that accepts and says nothing: the deadline is an I/O error.
	silent := testnet.Serve(t, testnet.Drain)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	conn, err := net.Dial("tcp", silent.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if r, err := Check(ctx, conn, Request{Protocol: "grpc"}); err == nil || r.Ready {
		t.Fatalf("a silent server: %+v, %v; want an error", r, err)
	}
}
