package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// newTestServer serves a dashboard over a monitor with a real SQLite store,
// fed results through Observe (the path remote agents' results take too).
func newTestServer(t *testing.T, opt Options) (*httptest.Server, *monitor.Monitor, monitor.Endpoint) {
	t.Helper()
	store, err := monitor.OpenStore(t.Context(), filepath.Join(t.TempDir(), "reach.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ep := monitor.Endpoint{Name: "db", Target: endpoint.Endpoint{Host: "127.0.0.1", Port: 5432}, Interval: time.Second, Timeout: time.Second, Expect: monitor.ExpectOpen}
	reg := prometheus.NewRegistry()
	diag := monitor.DiagnoserFunc(func(context.Context, endpoint.Endpoint) (monitor.Diagnosis, error) {
		return monitor.Diagnosis{Cause: "not-listening", Verdict: "nothing listens on 127.0.0.1:5432",
			Findings: []monitor.Finding{{Issue: "Server not running", Evidence: "no socket on :5432", Fix: "start postgres"}}}, nil
	})
	m, err := monitor.New(t.Context(), &monitor.Config{Endpoints: []monitor.Endpoint{ep}, Alerts: monitor.Alerts{Rise: 1, Fall: 1}},
		monitor.Options{Store: store, Metrics: monitor.NewMetrics(reg), Diagnoser: diag, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	opt.Monitor, opt.Gatherer = m, reg
	srv := httptest.NewServer(New(opt))
	t.Cleanup(srv.Close)
	return srv, m, ep
}

func get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, "", hdr...)
}

func TestAPI(t *testing.T) {
	srv, m, ep := newTestServer(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	// Run only writes history here: the endpoint is probed by hand below.
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	now := time.Now()
	m.Observe(t.Context(), monitor.LocalSource, ep, now.Add(-2*time.Second), probe.Result{Class: probe.Open, RTT: 3 * time.Millisecond})
	m.Observe(t.Context(), monitor.LocalSource, ep, now.Add(-time.Second), probe.Result{Class: probe.Refused, Errno: 111})

	// The down transition gets its diagnosis asynchronously; wait for it.
	var d EndpointDetail
	if !testnet.Poll(30*time.Second, func() bool {
		code, body := get(t, srv.URL+"/api/endpoints/local/db")
		if code != 200 {
			t.Fatalf("detail: %d %s", code, body)
		}
		d = EndpointDetail{}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		return d.Down != nil && d.Down.Diagnosis != nil
	}) {
		t.Fatalf("no diagnosis in the detail: %+v", d)
	}
	if d.State != monitor.StateDown || d.Down.Diagnosis.Cause != "not-listening" || len(d.Down.Diagnosis.Findings) != 1 || len(d.Transitions) != 2 {
		t.Errorf("detail = %+v", d)
	}

	code, body := get(t, srv.URL+"/api/endpoints")
	var list struct{ Endpoints []EndpointView }
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Endpoints) != 1 || list.Endpoints[0].State != monitor.StateDown {
		t.Errorf("list: %d %s", code, body)
	}
	if !testnet.Poll(30*time.Second, func() bool {
		code, body = get(t, srv.URL+"/api/endpoints/local/db/latency?window=1h")
		var lat struct{ Points []monitor.Point }
		json.Unmarshal([]byte(body), &lat)
		return code == 200 && len(lat.Points) > 0
	}) {
		t.Fatalf("latency: %d %s", code, body)
	}
	for path, want := range map[string]int{
		"/api/endpoints/local/nope":                 404,
		"/api/endpoints/local/db/latency?window=7y": 400,
		"/":              200,
		"/static/app.js": 200,
		"/metrics":       200,
	} {
		if code, body := get(t, srv.URL+path); code != want {
			t.Errorf("GET %s: %d, want %d (%s)", path, code, want, body)
		}
	}
	if _, body := get(t, srv.URL+"/metrics"); !strings.Contains(body, `reach_probe_failures_total{cause="undiagnosed",class="refused",endpoint="db",source="local"} 1`) {
		t.Errorf("metrics lack the failure by class and cause:\n%s", body)
	}
	if _, body := get(t, srv.URL+"/"); strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page loads something from elsewhere:\n%s", body)
	}
}

func TestReadOnlyAndAuth(t *testing.T) {
	srv, _, _ := newTestServer(t, Options{Token: "s3cret", User: "ops", Password: "pw"})
	cases := []struct {
		name   string
		method string
		path   string
		hdr    []string
		want   int
	}{
		{"no credentials", "GET", "/api/endpoints", nil, 401},
		{"wrong token", "GET", "/api/endpoints?token=nope", nil, 401},
		{"token in query", "GET", "/api/endpoints?token=s3cret", nil, 200},
		{"bearer token", "GET", "/metrics", []string{"Authorization", "Bearer s3cret"}, 200},
		{"bearer in lower case", "GET", "/metrics", []string{"Authorization", "bearer s3cret"}, 200}, // the scheme is case-insensitive (RFC 9110)
		{"wrong bearer token", "GET", "/metrics", []string{"Authorization", "Bearer nope"}, 401},
		{"basic auth", "GET", "/", []string{"Authorization", "Basic b3BzOnB3"}, 200},     // ops:pw
		{"wrong password", "GET", "/", []string{"Authorization", "Basic b3BzOnB4"}, 401}, // ops:px
		{"assets without credentials", "GET", "/static/app.js", nil, 200},                // the page's <script> cannot carry ?token=
		{"page without credentials", "GET", "/", nil, 401},
		{"health check without credentials", "GET", "/healthz", nil, 200},
		{"POST refused", "POST", "/api/endpoints?token=s3cret", nil, 405},
		{"DELETE refused", "DELETE", "/api/endpoints/local/db?token=s3cret", nil, 405},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if c.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate header", c.name)
		}
	}
}

// TestTokenOnlyChallenge: a 401 always says which scheme to use (RFC 9110
// requires WWW-Authenticate), also when only a token is configured.
func TestTokenOnlyChallenge(t *testing.T) {
	srv, _, _ := newTestServer(t, Options{Token: "s3cret"})
	resp, err := http.Get(srv.URL + "/api/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("%d with WWW-Authenticate %q, want 401 with a Bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestEventsStreamChanges(t *testing.T) {
	srv, m, ep := newTestServer(t, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	next := func() (string, []monitor.Status) {
		var event string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var sts []monitor.Status
				if err := json.Unmarshal([]byte(d), &sts); err != nil {
					t.Fatal(err)
				}
				return event, sts
			}
		}
	}
	ev, sts := next()
	if ev != "snapshot" || len(sts) != 1 || sts[0].State != monitor.StateUnknown {
		t.Fatalf("first event %s %+v", ev, sts)
	}
	m.Observe(t.Context(), monitor.LocalSource, ep, time.Now(), probe.Result{Class: probe.Refused})
	for {
		ev, sts = next()
		if ev == "status" && len(sts) == 1 && sts[0].State == monitor.StateDown {
			break
		}
	}
	// A reload that adds and removes endpoints sends the whole new list,
	// which the page puts in place of its own: status events alone never
	// removed an endpoint, nor showed one added before its first probe.
	api := ep
	api.Name = "api"
	m.Reload(&monitor.Config{Endpoints: []monitor.Endpoint{api}})
	for {
		ev, sts = next()
		if ev == "snapshot" {
			break
		}
	}
	if len(sts) != 1 || sts[0].Endpoint != "api" {
		t.Errorf("snapshot after the reload: %+v, want api alone", sts)
	}
}

// Before its first probe an endpoint has no "last" result, rather than one
// dated year 1.
func TestAPIOmitsLastBeforeFirstProbe(t *testing.T) {
	srv, _, _ := newTestServer(t, Options{})
	code, body := get(t, srv.URL+"/api/endpoints")
	if code != 200 || !strings.Contains(body, `"endpoint":"db"`) || strings.Contains(body, `"last"`) || strings.Contains(body, "0001-01-01") {
		t.Errorf("list before any probe: %d %s", code, body)
	}
}
