package doctor

import (
	"context"
	"crypto/tls"
	"encoding/json"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// The ladder past TCP, against real servers on loopback, from each vantage
// point the doctor claims for these findings: this host (its socket table
// seen), through the agent on the target host (its evidence answered), and
// the client alone (nothing of the target host seen). What the server
// answered above TCP is the client's own evidence, so the cause and its
// confidence are the same from all three. The target is 198.18.0.2, whose
// connections the test's dialer takes to the same port on 127.0.0.1: no
// packet leaves loopback, and the host check sees another host unless the
// vantage is the target's own.
func TestLayerCauses(t *testing.T) {
	ca := testnet.NewCA(t, "reach test CA")
	now := time.Now()
	tlsServer := func(c testnet.Cert, auth tls.ClientAuthType) netip.AddrPort {
		return testnet.AddrPort(testnet.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, c)},
			ClientAuth: auth, ClientCAs: ca.Pool()}, nil))
	}
	ip := []string{"127.0.0.1", "198.18.0.2"}
	target := netip.MustParseAddr("198.18.0.2")
	toLoopback := func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap := netip.MustParseAddrPort(addr)
		if ap.Addr() == target {
			ap = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
		}
		return (&net.Dialer{}).DialContext(ctx, network, ap.String())
	}
	valid := tlsServer(testnet.Cert{Names: ip}, tls.NoClientCert)
	expired := tlsServer(testnet.Cert{Names: ip, NotBefore: now.AddDate(0, -2, 0), NotAfter: now.AddDate(0, 0, -10)}, tls.NoClientCert)
	notYet := tlsServer(testnet.Cert{Names: ip, NotBefore: now.AddDate(0, 0, 10), NotAfter: now.AddDate(0, 2, 0)}, tls.NoClientCert)
	wrongName := tlsServer(testnet.Cert{Names: []string{"other.test"}}, tls.NoClientCert)
	mtls := tlsServer(testnet.Cert{Names: ip}, tls.RequireAndVerifyClientCert)

	web := func(h http.Handler) netip.AddrPort {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return netip.MustParseAddrPort(strings.TrimPrefix(s.URL, "http://"))
	}
	ok := web(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	fails := web(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }))
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: testnet.ClosedPort(t).String()})
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxied := web(proxy)
	httpsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(httpsSrv.Close)
	httpsPort := netip.MustParseAddrPort(strings.TrimPrefix(httpsSrv.URL, "https://"))

	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	gln := testnet.Listen(t)
	go gs.Serve(gln)
	t.Cleanup(gs.Stop)
	starting := testnet.AddrPort(gln)

	tlsOnly := func(o probe.TLSOptions) func() (*probe.TLSOptions, *app.Request) {
		return func() (*probe.TLSOptions, *app.Request) { return &o, nil }
	}
	plain := func(proto string) func() (*probe.TLSOptions, *app.Request) {
		return func() (*probe.TLSOptions, *app.Request) { return nil, &app.Request{Protocol: proto} }
	}
	roots := probe.TLSOptions{RootCAs: ca.Pool()}
	for _, tc := range []struct {
		name   string
		dst    netip.AddrPort
		layers func() (*probe.TLSOptions, *app.Request)
		cause  Cause
		conf   Confidence
	}{
		{"reachable over TLS", valid, tlsOnly(roots), Reachable, Confirmed},
		{"expired", expired, tlsOnly(roots), TLSExpired, Confirmed},
		{"not yet valid", notYet, tlsOnly(roots), TLSExpired, Confirmed},
		{"untrusted", valid, tlsOnly(probe.TLSOptions{}), TLSUntrusted, Confirmed},
		{"name mismatch", wrongName, tlsOnly(roots), TLSNameMismatch, Confirmed},
		{"client certificate required", mtls, tlsOnly(roots), TLSFailed, Confirmed},
		{"tls on a plain port", ok, tlsOnly(roots), WrongProtocol, Confirmed},
		{"http on a tls port", httpsPort, plain("http"), WrongProtocol, Confirmed},
		{"plain grpc on a tls port", valid, plain("grpc"), WrongProtocol, Confirmed},
		{"http 500", fails, plain("http"), AppError, Confirmed},
		{"proxy backend down", proxied, plain("http"), AppError, Confirmed},
		{"grpc not serving", starting, plain("grpc"), NotReady, Confirmed},
		{"http ok", ok, plain("http"), Reachable, Confirmed},
	} {
		for _, vantage := range []string{"host", "agent", "client"} {
			t.Run(tc.name+"/"+vantage, func(t *testing.T) {
				dst := netip.AddrPortFrom(target, tc.dst.Port())
				here := []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")}
				elsewhere := []netip.Prefix{netip.MustParsePrefix("198.18.0.9/24")}
				listening := []sockets.Socket{listener(dst.String(), "sleeping", 0, 128)}
				opt := Options{Timeout: 5 * time.Second, Probes: 1, Hold: -1, Dial: toLoopback,
					Ladder: []Stage{{resolved(dst.Addr())}, {TCPCheck, HostCheck}, {SocketsCheck, LayersCheck}}}
				switch vantage {
				case "host":
					self := fakeHost{addrs: here, socks: listening}
					opt.Sockets, opt.Firewall = self, self
				case "agent":
					self := fakeHost{addrs: elsewhere}
					opt.Sockets, opt.Firewall = self, self
					opt.Remote = fakeAgents{dst.Addr(): func(context.Context) (HostEvidence, error) {
						return HostEvidence{Host: "agent on the target", Addresses: here, Listening: listening}, nil
					}}
				case "client":
					self := fakeHost{addrs: elsewhere}
					opt.Sockets, opt.Firewall = self, self
				}
				opt.TLS, opt.App = tc.layers()
				r := Run(context.Background(), endpoint.FromAddrPort(dst), opt)
				var text strings.Builder
				r.WriteText(&text, TextOptions{Width: 200})
				if r.Cause != tc.cause || r.Confidence != tc.conf || r.Reachable != (tc.cause == Reachable) {
					t.Fatalf("%s (%s) reachable %v, want %s (%s)\n%s", r.Cause, r.Confidence, r.Reachable, tc.cause, tc.conf, text.String())
				}
				if r.Class != probe.Open {
					t.Fatalf("class %s: TCP connected, the layers decide\n%s", r.Class, text.String())
				}
				if tc.cause != Reachable {
					f := r.Findings[0]
					if f.Issue == "" || f.Evidence == "" || f.Fix == "" || !strings.Contains(f.Evidence, dst.String()) {
						t.Fatalf("finding %+v lacks issue, evidence or fix", f)
					}
					if !strings.Contains(r.Verdict, "the handshake completes, but") {
						t.Fatalf("verdict %q", r.Verdict)
					}
				}
				want := map[string]string{"host": "this host", "agent": "agent on the target", "client": ""}[vantage]
				if got := r.Addresses[0].Evidence; (got == nil) != (want == "") || got != nil && got.From != want {
					t.Fatalf("evidence from %+v, want %q", got, want)
				}
				// --json carries the layers.
				b, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if opt.TLS != nil && !strings.Contains(string(b), `"tls":{"ready"`) ||
					opt.App != nil && !strings.Contains(string(b), `"app":{"protocol"`) {
					t.Fatalf("JSON without the layers: %s", b)
				}
			})
		}
	}
}

// A certificate that expired an hour ago could be this host's clock: likely,
// not confirmed. And a server that accepts and never answers HTTP is hung.
func TestLayerCausesEdges(t *testing.T) {
	ca := testnet.NewCA(t, "reach test CA")
	now := time.Now()
	justExpired := testnet.AddrPort(testnet.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t,
		testnet.Cert{Names: []string{"127.0.0.1"}, NotBefore: now.AddDate(0, -1, 0), NotAfter: now.Add(-time.Hour)})}}, nil))
	silent := testnet.Serve(t, testnet.Drain)
	self := fakeHost{addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.9/24")}}
	run := func(dst netip.AddrPort, o *probe.TLSOptions, a *app.Request, timeout time.Duration) *Report {
		return Run(context.Background(), endpoint.FromAddrPort(dst), Options{Timeout: timeout, Probes: 1, Hold: -1,
			Sockets: self, Firewall: self, TLS: o, App: a,
			Ladder: []Stage{{resolved(dst.Addr())}, {TCPCheck, HostCheck}, {LayersCheck}}})
	}
	r := run(justExpired, &probe.TLSOptions{RootCAs: ca.Pool()}, nil, 5*time.Second)
	if r.Cause != TLSExpired || r.Confidence != Likely || !strings.Contains(r.Findings[0].Evidence, "clock") {
		t.Errorf("expired an hour ago: %s (%s) %+v", r.Cause, r.Confidence, r.Findings)
	}
	r = run(silent, nil, &app.Request{Protocol: "http"}, 2*time.Second)
	if r.Cause != ServerHung || r.Reachable || !strings.Contains(r.Findings[0].Issue, "does not answer HTTP") {
		t.Errorf("silent server: %s (%s) %+v", r.Cause, r.Confidence, r.Findings)
	}
	// No layer asked: the check says so and changes nothing.
	r = run(silent, nil, nil, time.Second)
	if !r.Reachable || r.Checks[len(r.Checks)-1].Status != Skip {
		t.Errorf("no layers: %+v", r.Checks)
	}
}
