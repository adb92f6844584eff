package probe

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

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
)

func runLayers(t *testing.T, ep endpoint.Endpoint, opt Options) Result {
	t.Helper()
	opt.Timeout = 10 * time.Second
	return Run(context.Background(), ep, opt)
}

func epOf(ln net.Listener) endpoint.Endpoint { return endpoint.FromAddrPort(testnet.AddrPort(ln)) }

func TestTLSLayer(t *testing.T) {
	ca := testnet.NewCA(t, "reach test CA")
	other := testnet.NewCA(t, "someone else's CA")
	now := time.Now()
	cert := func(c testnet.Cert) []tls.Certificate { return []tls.Certificate{ca.Issue(t, c)} }
	valid := testnet.ServeTLS(t, &tls.Config{Certificates: cert(testnet.Cert{Names: []string{"db.test", "127.0.0.1"}})}, nil)
	expired := testnet.ServeTLS(t, &tls.Config{Certificates: cert(testnet.Cert{Names: []string{"127.0.0.1"},
		NotBefore: now.AddDate(0, 0, -60), NotAfter: now.AddDate(0, 0, -3)})}, nil)
	notYet := testnet.ServeTLS(t, &tls.Config{Certificates: cert(testnet.Cert{Names: []string{"127.0.0.1"},
		NotBefore: now.AddDate(0, 0, 5), NotAfter: now.AddDate(0, 0, 60)})}, nil)
	wrongName := testnet.ServeTLS(t, &tls.Config{Certificates: cert(testnet.Cert{Names: []string{"other.test"}})}, nil)
	clientCert := ca.Issue(t, testnet.Cert{Names: []string{"client"}, Client: true})
	mtls := func(max uint16) net.Listener {
		return testnet.ServeTLS(t, &tls.Config{Certificates: cert(testnet.Cert{Names: []string{"127.0.0.1"}}),
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(), MaxVersion: max}, nil)
	}
	mtls13, mtls12 := mtls(tls.VersionTLS13), mtls(tls.VersionTLS12)
	oldTLS := testnet.ServeTLS(t, &tls.Config{Certificates: cert(testnet.Cert{Names: []string{"127.0.0.1"}}),
		MaxVersion: tls.VersionTLS10}, nil)
	plainHTTP := httptest.NewServer(http.NotFoundHandler())
	defer plainHTTP.Close()
	plainEP, _ := endpoint.ParseEndpoint(strings.TrimPrefix(plainHTTP.URL, "http://"), 0)
	silent := endpoint.FromAddrPort(testnet.Serve(t, func(c net.Conn) { c.Read(make([]byte, 1)) }))

	for _, tc := range []struct {
		name  string
		ep    endpoint.Endpoint
		opt   TLSOptions
		ready bool
		cause app.Cause
		in    string
	}{
		{"valid", epOf(valid), TLSOptions{RootCAs: ca.Pool()}, true, "", ""},
		{"valid by name", epOf(valid), TLSOptions{RootCAs: ca.Pool(), ServerName: "db.test"}, true, "", ""},
		{"expired", epOf(expired), TLSOptions{RootCAs: ca.Pool()}, false, app.TLSExpired, "expired on"},
		{"not yet valid", epOf(notYet), TLSOptions{RootCAs: ca.Pool()}, false, app.TLSExpired, "is not valid before"},
		{"wrong name", epOf(wrongName), TLSOptions{RootCAs: ca.Pool()}, false, app.TLSNameMismatch, "names other.test, not 127.0.0.1"},
		{"unknown CA, system roots", epOf(valid), TLSOptions{}, false, app.TLSUntrusted, `"CN=reach test CA", which is not among the system's roots`},
		{"unknown CA, another CA", epOf(valid), TLSOptions{RootCAs: other.Pool()}, false, app.TLSUntrusted, "the CA file given"},
		{"insecure on expired", epOf(expired), TLSOptions{InsecureSkipVerify: true}, true, app.TLSExpired, "verification skipped (--insecure)"},
		{"client cert required, none (TLS 1.3)", epOf(mtls13), TLSOptions{RootCAs: ca.Pool()}, false, app.TLSFailed, `"certificate required" after asking for a client certificate`},
		{"client cert required, none (TLS 1.2)", epOf(mtls12), TLSOptions{RootCAs: ca.Pool()}, false, app.TLSFailed, "after asking for a client certificate"},
		{"client cert given", epOf(mtls13), TLSOptions{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCert}}, true, "", ""},
		{"no shared version", epOf(oldTLS), TLSOptions{RootCAs: ca.Pool()}, false, app.TLSFailed, "protocol version"},
		{"tls on a plain http port", plainEP, TLSOptions{}, false, app.WrongProtocol, `"HTTP/": a plain HTTP answer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := tc.opt
			r := runLayers(t, tc.ep, Options{TLS: &opt})
			if r.Class != Open || r.TLS == nil {
				t.Fatalf("class %s, TLS %+v, err %v", r.Class, r.TLS, r.Err)
			}
			if r.TLS.Ready != tc.ready || r.Ready() != tc.ready || r.TLS.Cause != tc.cause || !strings.Contains(r.TLS.Detail, tc.in) {
				t.Fatalf("ready %v cause %q detail %q; want %v %q ...%s...", r.TLS.Ready, r.TLS.Cause, r.TLS.Detail, tc.ready, tc.cause, tc.in)
			}
			if layer, cause, _ := r.Layer(); layer != "tls" || cause != tc.cause {
				t.Fatalf("Layer() = %s %s", layer, cause)
			}
			if r.TLS.Handshake <= 0 || r.RTT <= 0 {
				t.Fatalf("handshake %v connect %v", r.TLS.Handshake, r.RTT)
			}
		})
	}
	r := runLayers(t, epOf(valid), Options{TLS: &TLSOptions{RootCAs: ca.Pool(), NextProtos: []string{"h2"}}})
	if !r.TLS.Verified || r.TLS.Version != "TLS 1.3" || r.TLS.NotAfter.IsZero() || r.TLS.DaysLeft(time.Now()) < 28 ||
		r.TLS.ServerName != "127.0.0.1" || !strings.Contains(r.TLS.Issuer, "reach test CA") {
		t.Errorf("valid: %+v", r.TLS)
	}
	// A server that closes on the ClientHello: an I/O failure of the TLS layer.
	r = runLayers(t, silent, Options{TLS: &TLSOptions{}})
	if (r.Class != ClosedByPeer && r.Class != Reset) || r.Ready() || !strings.Contains(r.Err.Error(), "the port may not speak TLS") {
		t.Errorf("closed during the handshake: %s %v", r.Class, r.Err)
	}
	if layer, _, _ := r.Layer(); layer != "tls" {
		t.Errorf("closed during the handshake: layer %s", layer)
	}
}

// https:// end to end, and a TLS 1.3 server's rejection of a client
// certificate that comes with the HTTP answer's first read.
func TestLayersHTTPS(t *testing.T) {
	ca := testnet.NewCA(t, "reach test CA")
	srvCert := ca.Issue(t, testnet.Cert{Names: []string{"127.0.0.1"}})
	serve := func(conf *tls.Config) endpoint.Endpoint {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		s.TLS = conf
		s.StartTLS()
		t.Cleanup(s.Close)
		ep, _ := endpoint.ParseEndpoint(strings.TrimPrefix(s.URL, "https://"), 0)
		return ep
	}
	web := serve(&tls.Config{Certificates: []tls.Certificate{srvCert}})
	mtls := serve(&tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()})
	target, err := endpoint.ParseTarget("https://" + web.String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	tlsOpt, req := Layers(target)
	tlsOpt.RootCAs = ca.Pool()
	req.ExpectBody = "ok"
	conn, r := Dial(context.Background(), web, Options{Timeout: 10 * time.Second, TLS: tlsOpt, App: req})
	if conn == nil || !r.Ready() || r.App.State != "200 OK" || r.TLS.ALPN != "http/1.1" || r.App.FirstByte <= 0 {
		t.Fatalf("https: %+v %+v %+v %v", r, r.TLS, r.App, r.Err)
	}
	if _, ok := conn.(*tls.Conn); !ok {
		t.Errorf("Dial with TLS returned a %T", conn)
	}
	conn.Close()
	r = runLayers(t, mtls, Options{TLS: &TLSOptions{RootCAs: ca.Pool()}, App: &app.Request{Protocol: "http"}})
	if layer, cause, detail := r.Layer(); layer != "tls" || cause != app.TLSFailed || r.Ready() {
		t.Fatalf("https without the client certificate: %s %s %s (%v)", layer, cause, detail, r.Err)
	}
}

// Redirects followed through the probe's own layers.
func TestRedirectDialer(t *testing.T) {
	final := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "here") }))
	defer final.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final.URL+"/x", http.StatusFound)
	}))
	defer first.Close()
	ep, _ := endpoint.ParseEndpoint(strings.TrimPrefix(first.URL, "http://"), 0)
	opt := Options{Timeout: 10 * time.Second}
	opt.App = &app.Request{Protocol: "http", ExpectBody: "here", Redirect: RedirectDialer(opt)}
	r := Run(context.Background(), ep, opt)
	if !r.Ready() || len(r.App.HTTP.Redirects) != 1 {
		t.Fatalf("redirect: %+v %v", r.App, r.Err)
	}
	ap, _ := netip.ParseAddrPort(strings.TrimPrefix(final.URL, "http://"))
	if !strings.Contains(r.App.HTTP.Redirects[0], ap.String()) {
		t.Errorf("redirects %v", r.App.HTTP.Redirects)
	}
	if errors.Is(r.Err, io.EOF) {
		t.Fatal(r.Err)
	}
}

// A TLS server closes a plain gRPC (HTTP/2) connection without a byte: a
// second connection's handshake shows the port speaks TLS: wrong-protocol.
// A plain server that closes the same way stays closed-by-peer.
func TestPlainToTLSConfirmed(t *testing.T) {
	ca := testnet.NewCA(t, "reach test CA")
	tlsLn := testnet.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, testnet.Cert{Names: []string{"127.0.0.1"}})}}, nil)
	closer := endpoint.FromAddrPort(testnet.Serve(t, func(c net.Conn) {}))
	r := runLayers(t, epOf(tlsLn), Options{App: &app.Request{Protocol: "grpc"}})
	if r.Class != Open || r.Ready() || r.App.Cause != app.WrongProtocol || !strings.Contains(r.App.Detail, "use grpcs://") {
		t.Fatalf("plain gRPC to a TLS port: %s %+v %v", r.Class, r.App, r.Err)
	}
	r = runLayers(t, closer, Options{App: &app.Request{Protocol: "grpc"}})
	if (r.Class != ClosedByPeer && r.Class != Reset) || r.App.Cause != "" {
		t.Fatalf("a plain server that closes: %s %+v %v", r.Class, r.App, r.Err)
	}
}

// A TLS 1.3 server that asks for a client certificate is given time to
// reject it after the handshake; a server that speaks first meanwhile loses
// nothing of what it said.
func TestClientCertVerdictKeepsData(t *testing.T) {
	ca := testnet.NewCA(t, "reach test CA")
	ln := testnet.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, testnet.Cert{Names: []string{"127.0.0.1"}})},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}, func(c net.Conn) {
		io.WriteString(c, "220 hello\r\n")
		c.Read(make([]byte, 1))
	})
	client := ca.Issue(t, testnet.Cert{Names: []string{"me"}, Client: true})
	conn, r := Dial(context.Background(), epOf(ln), Options{Timeout: 10 * time.Second,
		TLS: &TLSOptions{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}}})
	if conn == nil || !r.Ready() || !r.TLS.ClientCertRequested {
		t.Fatalf("mTLS: %+v %v", r.TLS, r.Err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(io.LimitReader(conn, int64(len("220 hello\r\n"))))
	if err != nil || string(got) != "220 hello\r\n" {
		t.Fatalf("read %q, %v; want the server's whole greeting", got, err)
	}
}
