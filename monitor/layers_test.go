package monitor

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/internal/testnet"
)

// httpsServer serves body on 127.0.0.1 over TLS with a certificate of ca
// valid for days more days.
func httpsServer(t *testing.T, ca *testnet.CA, days int, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, testnet.Cert{
		Names: []string{"127.0.0.1"}, NotAfter: time.Now().Add(time.Duration(days)*24*time.Hour + time.Hour)})}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestURLEndpoints watches https:// endpoints through real TLS servers: the
// layer that decides, the certificate's expiry in the sample and the
// metrics, warn_days, expect_status and expect_body.
func TestURLEndpoints(t *testing.T) {
	ca := testnet.NewCA(t, "reach test CA")
	caFile := ca.WriteFile(t, t.TempDir())
	good := httpsServer(t, ca, 90, 200, "all ok")
	soon := httpsServer(t, ca, 10, 200, "all ok")
	failing := httpsServer(t, ca, 90, 503, "backend down")
	yaml := fmt.Sprintf(`endpoints:
  - name: web
    target: %[1]s/healthz
    ca: %[4]s
    expect_body: ok
    warn_days: 30
  - name: soon
    target: %[2]s/healthz
    ca: %[4]s
    warn_days: 30
  - name: failing
    target: %[3]s
    ca: %[4]s
  - name: wrong-body
    target: %[1]s
    ca: %[4]s
    expect_body: missing
  - name: untrusted
    target: %[1]s
`, good.URL, soon.URL, failing.URL, caFile)
	cfg, err := ParseConfig("reach.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Endpoints {
		cfg.Endpoints[i].Interval, cfg.Endpoints[i].Timeout = 2*time.Second, 2*time.Second
	}
	reg := prometheus.NewRegistry()
	m, err := New(t.Context(), cfg, Options{Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(t.Context())
	defer func() { stop(); <-done }()
	go func() { done <- m.Run(runCtx) }()
	testnet.Eventually(t, 30*time.Second, "every endpoint probed", func() bool {
		for _, s := range m.Statuses() {
			if s.Last.Time.IsZero() {
				return false
			}
		}
		return len(m.Statuses()) == 5
	})
	want := map[string]struct {
		ok           bool
		layer, cause string
		detail       string
	}{
		"web":        {true, "http", "", ""},
		"soon":       {false, "tls", "tls-expiring", "fewer than warn_days 30"},
		"failing":    {false, "http", "app-error", "503"},
		"wrong-body": {false, "http", "app-error", "missing"},
		"untrusted":  {false, "tls", "tls-untrusted", ""},
	}
	for _, s := range m.Statuses() {
		w := want[s.Endpoint]
		l := s.Last
		if l.OK != w.ok || l.Layer != w.layer || l.Cause != w.cause || !strings.Contains(l.Detail, w.detail) {
			t.Errorf("%s: ok=%v layer=%q cause=%q detail=%q, want ok=%v layer=%q cause=%q detail ~ %q",
				s.Endpoint, l.OK, l.Layer, l.Cause, l.Detail, w.ok, w.layer, w.cause, w.detail)
		}
		if s.Endpoint == "web" {
			if left := time.Until(l.CertExpiry); left < 89*24*time.Hour || left > 91*24*time.Hour {
				t.Errorf("web: certificate expiry %v, %v from now; want 90 days", l.CertExpiry, left)
			}
			if l.TLS <= 0 || l.FirstByte <= 0 {
				t.Errorf("web: tls %v first byte %v, want both measured", l.TLS, l.FirstByte)
			}
		}
	}
	got := gathered(t, reg)
	if v := got["reach_tls_cert_expiry_seconds,endpoint=web,source=local"]; math.Abs(v-90.04*86400) > 2*86400 {
		t.Errorf("reach_tls_cert_expiry_seconds for web = %v, want about 90 days", v)
	}
	for _, phase := range []string{"connect", "tls", "first_byte"} {
		if v, ok := got["reach_probe_phase_seconds,endpoint=web,phase="+phase+",source=local"]; !ok || v <= 0 {
			t.Errorf("reach_probe_phase_seconds{phase=%s} = %v (present %v)", phase, v, ok)
		}
	}
}

func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			k := f.GetName()
			for _, l := range mt.GetLabel() {
				k += "," + l.GetName() + "=" + l.GetValue()
			}
			got[k] = value(mt)
		}
	}
	return got
}

func TestConfigLayers(t *testing.T) {
	cfg, err := ParseConfig("reach.yaml", []byte(`endpoints:
  - name: db
    target: 127.0.0.1:3306
  - name: db-ok
    target: mysql://127.0.0.1
  - name: pg
    target: postgres://app@127.0.0.1/app
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "reach.yaml:3: endpoints[0].target") ||
		!strings.Contains(cfg.Warnings[0], "mysql://127.0.0.1:3306") {
		t.Errorf("warnings %q, want one for line 3 suggesting mysql://127.0.0.1:3306", cfg.Warnings)
	}
	if cfg.Endpoints[0].Layers != nil || cfg.Endpoints[1].Layers == nil || cfg.Endpoints[1].Target.Port != 3306 {
		t.Errorf("layers %+v %+v", cfg.Endpoints[0].Layers, cfg.Endpoints[1].Layers)
	}
	tlsOpt, req := cfg.Endpoints[2].Layers.Options()
	if tlsOpt != nil || req == nil || req.Protocol != "postgres" || req.User != "app" || req.Database != "app" {
		t.Errorf("pg layers: %+v %+v", tlsOpt, req)
	}
}
