package hub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/internal/testnet"
)

// TestCA is a throw-away CA that signs server and client certificates,
// exported for the lab tests in package agent_test.
type TestCA struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	next int64
}

func NewTestCA(t *testing.T) *TestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reach test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &TestCA{dir: t.TempDir(), ca: ca, key: key, next: 2}
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// CAFile is the CA certificate's PEM file.
func (p *TestCA) CAFile() string { return filepath.Join(p.dir, "ca.pem") }

// Issue writes name.pem and name-key.pem and returns their paths.
func (p *TestCA) Issue(t *testing.T, name string, usage x509.ExtKeyUsage, ips ...net.IP) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.next), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
	}
	p.next++
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, key, "EC PRIVATE KEY", kder)
	return cert, key
}

func TestMutualTLS(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	p := NewTestCA(t)
	ca := filepath.Join(p.dir, "ca.pem")
	srvCert, srvKey := p.Issue(t, "hub", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	aCert, aKey := p.Issue(t, "a", x509.ExtKeyUsageClientAuth)
	bCert, bKey := p.Issue(t, "b", x509.ExtKeyUsageClientAuth)

	h, err := New(Config{
		Token: testToken, Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}, {Name: "b", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h.Handler())
	srv.TLS, err = agent.ServerTLS(srvCert, srvKey, ca)
	if err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	defer srv.Close()

	clientWith := func(cert, key string) *http.Client {
		cfg, err := agent.ClientTLS(ca, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}

	// Agent a with its own certificate works end to end.
	runAgent(t, agent.Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond, HTTPClient: clientWith(aCert, aKey), ReportEvery: 30 * time.Millisecond})
	testnet.Eventually(t, 10*time.Second, "a's result over mTLS", func() bool { return len(h.History("a", open.String())) > 0 })

	for _, tc := range []struct {
		name   string
		client *http.Client
		status int // 0: no answer at all
	}{
		{"b's certificate cannot act as a", clientWith(bCert, bKey), http.StatusForbidden},
		{"no client certificate", clientWith("", ""), 0}, // the TLS handshake fails
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pl agent.ProbeList
			status, err := call(tc.client, srv.URL, http.MethodGet, agent.PathTargets, url.Values{"agent": {"a"}}, nil, &pl)
			if err == nil || status != tc.status {
				t.Errorf("got status %d, %v; want %d", status, err, tc.status)
			}
		})
	}
	// b's certificate does work as b.
	var pl agent.ProbeList
	if _, err := call(clientWith(bCert, bKey), srv.URL, http.MethodGet, agent.PathTargets, url.Values{"agent": {"b"}}, nil, &pl); err != nil {
		t.Errorf("b as b: %v", err)
	}
	if _, err := agent.ServerTLS(srvCert, srvKey, filepath.Join(p.dir, "missing.pem")); err == nil {
		t.Error("agent.ServerTLS with a missing CA file: no error")
	}
}
