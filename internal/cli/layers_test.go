package cli

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/reach-tools/reach/internal/testnet"
)

// reach check, wait and connect with URL targets and the layer flags, on
// TLS and HTTP servers made in the test.
func TestLayersCommands(t *testing.T) {
	dir := t.TempDir()
	ca := testnet.NewCA(t, "reach test CA")
	caFile := ca.WriteFile(t, dir)
	certFile, keyFile := testnet.WriteKeyPair(t, dir, "client", ca.Issue(t, testnet.Cert{Names: []string{"client"}, Client: true}))
	srvCert := ca.Issue(t, testnet.Cert{Names: []string{"127.0.0.1"}, NotAfter: time.Now().AddDate(0, 0, 10)})
	expired := ca.Issue(t, testnet.Cert{Names: []string{"127.0.0.1"}, NotBefore: time.Now().AddDate(0, -1, 0), NotAfter: time.Now().AddDate(0, 0, -5)})
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "db down", 500)
			return
		}
		io.WriteString(w, "all good")
	}))
	web.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}}
	web.StartTLS()
	defer web.Close()
	https := web.URL // https://127.0.0.1:PORT
	hostport := strings.TrimPrefix(https, "https://")
	echo := testnet.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: ca.Pool()}, func(c net.Conn) { io.Copy(c, c) })
	old := testnet.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{expired}}, nil)

	type report struct {
		Target    string `json:"target"`
		Reachable bool   `json:"reachable"`
		Cause     string `json:"cause"`
		Verdict   string `json:"verdict"`
		Addresses []struct {
			TLS *struct {
				Version  string `json:"version"`
				Verified bool   `json:"verified"`
			} `json:"tls"`
			App *struct {
				State string `json:"state"`
			} `json:"app"`
		} `json:"addresses"`
	}
	for _, tc := range []struct {
		args  []string
		code  int
		cause string
	}{
		{[]string{https + "/", "--ca", caFile, "--expect-body", "good"}, ExitOK, "reachable"},
		{[]string{https + "/down", "--ca", caFile}, ExitFail, "app-error"},
		{[]string{https + "/", "--ca", caFile, "--expect-status", "204"}, ExitFail, "app-error"},
		{[]string{https + "/"}, ExitFail, "tls-untrusted"},
		{[]string{https + "/", "--insecure"}, ExitOK, "reachable"},
		{[]string{"http://" + hostport + "/"}, ExitFail, "wrong-protocol"},
		{[]string{"tls://" + testnet.AddrPort(old).String(), "--ca", caFile}, ExitFail, "tls-expired"},
	} {
		args := append([]string{"check", "--json", "--hold", "0", "--timeout", "5s"}, tc.args...)
		code, out, errs := run(t, args...)
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != tc.code || r.Cause != tc.cause || len(r.Addresses) == 0 {
			t.Errorf("%v: exit %d cause %q, want %d %q (%v)\n%s%s", tc.args, code, r.Cause, tc.code, tc.cause, err, out, errs)
			continue
		}
		if !strings.Contains(r.Target, "://") || (strings.HasPrefix(tc.args[0], "https") && r.Addresses[0].TLS == nil) {
			t.Errorf("%v: target %q, layers %+v", tc.args, r.Target, r.Addresses[0])
		}
	}
	// The text report names the URL, the layers, and --warn-days the coming expiry.
	code, out, _ := run(t, "check", https+"/", "--ca", caFile, "--hold", "0", "--warn-days", "30")
	if code != ExitOK || !strings.Contains(out, "TLS 1.3") || !strings.Contains(out, "http: 200 OK") ||
		!strings.Contains(out, "expires within --warn-days 30") || !strings.Contains(out, https+"/ is reachable") {
		t.Errorf("check text: exit %d\n%s", code, out)
	}

	// gRPC's standard health check, of the server and of one service.
	hs := health.NewServer()
	hs.SetServingStatus("orders.Orders", healthpb.HealthCheckResponse_NOT_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	gln := testnet.Listen(t)
	go gs.Serve(gln)
	defer gs.Stop()
	grpcURL := "grpc://" + gln.Addr().String()
	if code, out, _ := run(t, "check", grpcURL, "--hold", "0"); code != ExitOK || !strings.Contains(out, "grpc: SERVING") {
		t.Errorf("check %s: exit %d\n%s", grpcURL, code, out)
	}
	if code, out, _ := run(t, "check", grpcURL+"/orders.Orders", "--hold", "0"); code != ExitFail ||
		!strings.Contains(out, "not-ready, confirmed") || !strings.Contains(out, `service "orders.Orders" is NOT_SERVING`) {
		t.Errorf("check %s/orders.Orders: exit %d\n%s", grpcURL, code, out)
	}

	// wait: ready at once; and a layer that never is, named at the timeout.
	code, _, errs := run(t, "wait", https+"/", "--ca", caFile, "--timeout", "10s")
	if code != ExitOK || !strings.Contains(errs, "ready after") {
		t.Errorf("wait https: exit %d\n%s", code, errs)
	}
	code, _, errs = run(t, "wait", https+"/down", "--ca", caFile, "--timeout", "2s", "--interval", "50ms")
	if code != ExitTimeout || !strings.Contains(errs, "accepts TCP, but its http layer was still not ready after 2s — app-error") ||
		!strings.Contains(errs, "try: reach check "+https+"/down") {
		t.Errorf("wait for a failing app: exit %d\n%s", code, errs)
	}

	// connect: TLS with a client certificate, data through it.
	var c struct {
		Connected bool `json:"connected"`
		TLS       *struct {
			Version             string `json:"version"`
			ClientCertRequested bool   `json:"client_cert_requested"`
		} `json:"tls"`
	}
	tlsEcho := "tls://" + testnet.AddrPort(echo).String()
	code, out, errs = run(t, "connect", tlsEcho, "--ca", caFile, "--cert", certFile, "--key", keyFile, "-z", "--json")
	if err := json.Unmarshal([]byte(out), &c); err != nil || code != ExitOK || !c.Connected || c.TLS == nil || !c.TLS.ClientCertRequested {
		t.Errorf("connect tls: exit %d %+v %v\n%s%s", code, c, err, out, errs)
	}
	code, _, errs = run(t, "connect", tlsEcho, "--ca", caFile, "-z")
	if code != ExitFail || !strings.Contains(errs, "tls layer: tls-failed") {
		t.Errorf("connect tls without the client certificate: exit %d\n%s", code, errs)
	}

	for _, args := range [][]string{
		{"check", "ftp://h:21"},
		{"check", "127.0.0.1:1", "--ca", caFile},
		{"check", "tls://127.0.0.1:1", "--expect-status", "200"},
		{"check", https, "--expect-status", "abc"},
		{"check", https, "--cert", certFile},
		{"check", https, "--ca", "/nonexistent/ca.pem"},
		{"wait", "127.0.0.1:1", "--insecure"},
		{"connect", "https://127.0.0.1:1/"},
		{"connect", "tls://127.0.0.1:1", "127.0.0.1:2"},
	} {
		if code, _, errs := run(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errs)
		}
	}
}
