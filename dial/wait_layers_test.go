package dial

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// Wait waits for the layer the target names: an HTTP server that answers
// 503 until its third request is ready at the third; a TLS server whose
// certificate expired never is, and the wait says which layer and why.
func TestWaitLayers(t *testing.T) {
	var n atomic.Int32
	warming := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	defer warming.Close()
	ca := testnet.NewCA(t, "test CA")
	expired := testnet.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, testnet.Cert{
		Names: []string{"127.0.0.1"}, NotBefore: time.Now().AddDate(0, -1, 0), NotAfter: time.Now().AddDate(0, 0, -2)})}}, nil)

	web, _ := endpoint.ParseEndpoint(strings.TrimPrefix(warming.URL, "http://"), 0)
	res, err := Wait(context.Background(), []endpoint.Endpoint{web}, WaitOptions{Timeout: 20 * time.Second,
		Interval: 50 * time.Millisecond, Layers: []Layers{{App: &app.Request{Protocol: "http"}}}})
	if err != nil || !res.Ready || n.Load() != 3 || res.Targets[0].App == nil || res.Targets[0].App.State != "200 OK" {
		t.Fatalf("warming server: %v, %+v, %d requests", err, res, n.Load())
	}

	tlsEP := endpoint.FromAddrPort(testnet.AddrPort(expired))
	res, err = Wait(context.Background(), []endpoint.Endpoint{tlsEP}, WaitOptions{Timeout: 2 * time.Second,
		Interval: 50 * time.Millisecond, Layers: []Layers{{TLS: &probe.TLSOptions{RootCAs: ca.Pool()}}}})
	var we *WaitError
	if res.Ready || !errors.As(err, &we) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired certificate: ready %v, %v", res.Ready, err)
	}
	tt := res.Targets[0]
	if tt.Layer != "tls" || tt.Cause != app.TLSExpired || tt.Attempts < 1 ||
		!strings.Contains(tt.Why, "accepts TCP, but its tls layer was still not ready after 2s — tls-expired: the certificate") {
		t.Fatalf("expired certificate: %+v", tt)
	}
}
