package app

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
)

// checkHTTP dials addr (in TLS when tlsOn, verification off: the TLS layer
// is probe's) and runs the HTTP check.
func checkHTTP(t *testing.T, addr string, tlsOn bool, req Request) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tlsOn {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		conn = tc
	}
	req.Protocol, req.TLS = "http", tlsOn
	req.Addr = netip.MustParseAddrPort(addr)
	return Check(ctx, conn, req)
}

func hostOf(s *httptest.Server) string {
	return strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
}

func TestHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "app/1.2")
		io.WriteString(w, "status: green")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "db down", 500) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "warming up", 503) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", 302) })
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", 307) })
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host+" "+r.URL.RequestURI()) })
	plain := httptest.NewServer(mux)
	defer plain.Close()
	secure := httptest.NewTLSServer(mux)
	defer secure.Close()
	redirect := func(ctx context.Context, scheme, hostport string) (net.Conn, error) {
		if scheme != "http" {
			return nil, errors.New("test: only http")
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", hostport)
	}
	for _, tc := range []struct {
		name  string
		tls   bool
		req   Request
		ready bool
		cause Cause
		state string
		in    string // in Detail
	}{
		{name: "ok", req: Request{Path: "/ok"}, ready: true, state: "200 OK"},
		{name: "ok over tls", tls: true, req: Request{Path: "/ok"}, ready: true, state: "200 OK"},
		{name: "404", req: Request{Path: "/nope"}, cause: AppError, state: "404 Not Found", in: "expected 200-399"},
		{name: "404 expected", req: Request{Path: "/nope", ExpectStatus: StatusSet{{404, 404}}}, ready: true},
		{name: "500", req: Request{Path: "/fail"}, cause: AppError, in: "500 Internal Server Error"},
		{name: "503 of the app itself", req: Request{Path: "/busy"}, cause: AppError, in: "503 Service Unavailable; expected 200-399"},
		{name: "body found", req: Request{Path: "/ok", ExpectBody: "green"}, ready: true},
		{name: "body missing", req: Request{Path: "/ok", ExpectBody: "red"}, cause: AppError, in: `without "red"`},
		{name: "redirect not followed", req: Request{Path: "/moved"}, ready: true, state: "302 Found", in: "(not followed)"},
		{name: "redirect not expected", req: Request{Path: "/moved", ExpectStatus: StatusSet{{200, 200}}}, cause: AppError},
		{name: "redirect followed", req: Request{Path: "/moved", ExpectBody: "green", Redirect: redirect}, ready: true, state: "200 OK"},
		{name: "redirect loop", req: Request{Path: "/loop", Redirect: redirect}, cause: AppError, in: "more than 10 redirects"},
		{name: "host and query sent", req: Request{Path: "/host?a=1", Host: "web.example", ExpectBody: "web.example:"}, ready: true},
		{name: "plain http on a tls port", req: Request{Path: "/ok"}, cause: WrongProtocol, in: "the port speaks HTTPS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := hostOf(plain)
			if tc.tls || tc.cause == WrongProtocol {
				addr = hostOf(secure)
			}
			r, err := checkHTTP(t, addr, tc.tls, tc.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if r.Ready != tc.ready || r.Cause != tc.cause || (tc.state != "" && r.State != tc.state) ||
				!strings.Contains(r.Detail, tc.in) {
				t.Fatalf("got ready %v cause %q state %q detail %q; want %v %q %q ...%q...",
					r.Ready, r.Cause, r.State, r.Detail, tc.ready, tc.cause, tc.state, tc.in)
			}
			if r.Protocol != "http" || r.FirstByte <= 0 || r.Total < r.FirstByte || r.HTTP == nil {
				t.Fatalf("protocol %q first byte %v total %v http %v", r.Protocol, r.FirstByte, r.Total, r.HTTP)
			}
		})
	}
	r, _ := checkHTTP(t, hostOf(plain), false, Request{Path: "/moved", Redirect: redirect})
	if len(r.HTTP.Redirects) != 1 || !strings.HasSuffix(r.HTTP.Redirects[0], "/ok") || r.Version != "app/1.2" {
		t.Errorf("redirects %v version %q", r.HTTP.Redirects, r.Version)
	}
}

// A server that answers a plain request in TLS (an alert, as OpenSSL-based
// servers do), one that answers in another protocol, one that closes.
func TestHTTPWrongPeer(t *testing.T) {
	alert := testnet.Serve(t, func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Write([]byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46})
	})
	ssh := testnet.Serve(t, func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")); c.Read(make([]byte, 512)) })
	closes := testnet.Serve(t, func(c net.Conn) { c.Read(make([]byte, 512)) })
	r, err := checkHTTP(t, alert.String(), false, Request{})
	if err != nil || r.Cause != WrongProtocol || r.State != string(KindTLS) || !strings.Contains(r.Detail, "15 03 01 00 02 02 46") {
		t.Errorf("TLS alert: %+v, %v", r, err)
	}
	r, err = checkHTTP(t, ssh.String(), false, Request{})
	if err != nil || r.Cause != WrongProtocol || !strings.Contains(r.Detail, "SSH greeting") {
		t.Errorf("SSH: %+v, %v", r, err)
	}
	r, err = checkHTTP(t, closes.String(), false, Request{})
	var ae *Error
	if !errors.As(err, &ae) || !errors.Is(err, io.EOF) || r.Ready {
		t.Errorf("a peer that closes: %+v, %v; want an *Error wrapping io.EOF", r, err)
	}
}

// A reverse proxy whose backend is down: Go's httputil.ReverseProxy (502,
// no headers) and an envoy-like 503 ("no healthy upstream").
func TestHTTPProxyBackendDown(t *testing.T) {
	backend := &url.URL{Scheme: "http", Host: testnet.ClosedPort(t).String()}
	goProxy := httputil.NewSingleHostReverseProxy(backend)
	goProxy.ErrorLog = log.New(io.Discard, "", 0)
	envoy := httputil.NewSingleHostReverseProxy(backend)
	envoy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.Header().Set("Server", "envoy")
		w.WriteHeader(503)
		io.WriteString(w, "no healthy upstream")
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
		in   string
	}{
		{"httputil.ReverseProxy", goProxy, "502 Bad Gateway; expected 200-399; it comes from a reverse proxy whose backend did not answer"},
		{"envoy", envoy, "503 Service Unavailable; expected 200-399; it comes from a reverse proxy (Server: envoy)"},
	} {
		s := httptest.NewServer(tc.h)
		r, err := checkHTTP(t, hostOf(s), false, Request{})
		s.Close()
		if err != nil || r.Cause != AppError || !r.HTTP.Proxy || !strings.Contains(r.Detail, tc.in) {
			t.Errorf("%s: %+v %+v, %v; want app-error from a proxy: ...%s...", tc.name, r, r.HTTP, err, tc.in)
		}
	}
}
