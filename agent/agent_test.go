package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/probe"
)

const testToken = "s3cret-token"

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openAndClosed returns a loopback port that accepts and one that refuses.
func openAndClosed(t *testing.T) (open, closed netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = ln2.Addr().(*net.TCPAddr).AddrPort()
	ln2.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort(), closed
}

type memSink struct {
	mu  sync.Mutex
	got []Result
}

func (s *memSink) Ingest(_ context.Context, rs []Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, rs...)
	return nil
}

func (s *memSink) results() []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Result(nil), s.got...)
}

func newTestHub(t *testing.T, cfg HubConfig) (*Hub, *httptest.Server) {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	h, err := NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	return h, srv
}

func runAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

func TestAgentReportsToHub(t *testing.T) {
	open, closed := openAndClosed(t)
	h, srv := newTestHub(t, HubConfig{
		Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}, {From: "a", To: closed.String()}},
	})
	sink := &memSink{}
	h.Sink = sink
	a := runAgent(t, Config{Name: "a", Hub: srv.URL, Token: testToken, ReportEvery: 50 * time.Millisecond})

	want := map[string]probe.Class{open.String(): probe.Open, closed.String(): probe.Refused}
	waitFor(t, 10*time.Second, "both targets in the matrix", func() bool {
		m := h.Matrix()
		for j, id := range m.Targets {
			c := m.Cells[0][j]
			if c == nil || c.Class != want[id] {
				return false
			}
		}
		return len(m.Targets) == 2
	})
	for _, r := range sink.results() {
		if r.Source != "a" {
			t.Errorf("sink got source %q, want the agent's name", r.Source)
		}
		if r.Class != want[r.Target] {
			t.Errorf("sink got %s for %s, want %s", r.Class, r.Target, want[r.Target])
		}
	}
	if hist := h.History("a", closed.String()); len(hist) == 0 || hist[0].Errno == 0 {
		t.Errorf("history for the refused port lacks the errno: %+v", hist)
	}

	// The agent's own metrics carry source and target.
	body := get(t, a.Handler(), PathMetrics, testToken, http.StatusOK)
	for _, line := range []string{
		`reach_agent_probe_success{source="a",target="` + open.String() + `"} 1`,
		`reach_agent_probe_success{source="a",target="` + closed.String() + `"} 0`,
		`reach_agent_probe_failures_total{class="refused",source="a",target="` + closed.String() + `"}`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %s\n%s", line, body)
		}
	}
}

// get calls h directly and returns the body, failing unless the status is want.
func get(t *testing.T, h http.Handler, path, token string, want int) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		t.Fatalf("GET %s: status %d, want %d\n%s", path, rec.Code, want, rec.Body)
	}
	return rec.Body.String()
}

func TestUnauthenticatedRefused(t *testing.T) {
	h, srv := newTestHub(t, HubConfig{Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}}})
	a, err := New(Config{Name: "a", Hub: srv.URL, Token: testToken, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		handler http.Handler
		path    string
	}{
		{"hub targets", h.Handler(), PathTargets + "?agent=a"},
		{"hub agents", h.Handler(), PathAgents},
		{"agent evidence", a.Handler(), PathEvidence + "?addr=127.0.0.1:22"},
		{"agent metrics", a.Handler(), PathMetrics},
		{"agent unknown path", a.Handler(), "/debug/pprof/"},
	} {
		for _, tok := range []string{"", "wrong", testToken + "x", testToken[:len(testToken)-1]} {
			t.Run(tc.name+"/"+tok, func(t *testing.T) {
				get(t, tc.handler, tc.path, tok, http.StatusUnauthorized)
			})
		}
	}
	// POST without a token, over the network.
	resp, err := http.Post(srv.URL+PathResults, "application/json", strings.NewReader(`{"agent":"a","results":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST results without token: %d, want 401", resp.StatusCode)
	}

	// An agent with the wrong token stops at once with a clear error.
	bad, err := New(Config{Name: "a", Hub: srv.URL, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bad.Run(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Run with a wrong token: %v, want ErrUnauthorized", err)
	}

	if _, err := New(Config{Name: "a", Hub: srv.URL}); !errors.Is(err, ErrNoToken) {
		t.Errorf("New without token: %v, want ErrNoToken", err)
	}
	if _, err := NewHub(HubConfig{}); !errors.Is(err, ErrNoToken) {
		t.Errorf("NewHub without token: %v, want ErrNoToken", err)
	}
}

func TestHubRejectsTargetsNotInConfig(t *testing.T) {
	open, _ := openAndClosed(t)
	h, srv := newTestHub(t, HubConfig{
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}, {Name: "b", Addr: netip.MustParseAddr("127.0.0.2")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	c, err := newClient(srv.URL, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	var reply IngestReply
	err = c.call(context.Background(), http.MethodPost, PathResults, nil, Batch{Agent: "a", Results: []Result{
		// An address of the agent's own choosing is replaced by the config's.
		{Target: open.String(), Addr: netip.MustParseAddrPort("198.18.0.9:22"), Class: probe.Open, Time: time.Now()},
		{Target: "198.18.0.9:22", Class: probe.Open, Time: time.Now()}, // not a's target
	}}, &reply)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Accepted != 1 || reply.Rejected != 1 {
		t.Errorf("reply %+v, want 1 accepted, 1 rejected", reply)
	}
	// b has no targets; a's target reported as b is rejected too.
	err = c.call(context.Background(), http.MethodPost, PathResults, nil, Batch{Agent: "b", Results: []Result{{Target: open.String(), Class: probe.Refused}}}, &reply)
	if err != nil || reply.Rejected != 1 {
		t.Errorf("b reporting a's target: %+v %v, want rejected", reply, err)
	}
	if got := h.History("a", open.String()); len(got) != 1 || got[0].Source != "a" || got[0].Addr != open {
		t.Errorf("history %+v, want the one accepted result from a", got)
	}
	var pl ProbeList
	if err := c.call(context.Background(), http.MethodGet, PathTargets, map[string][]string{"agent": {"nobody"}}, nil, &pl); err == nil {
		t.Error("probe list for an unknown agent: no error")
	}
}

// flakyHub is a hub front that can be switched off (503) to simulate an outage.
type flakyHub struct {
	down atomic.Bool
	next http.Handler
}

func (f *flakyHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
		return
	}
	f.next.ServeHTTP(w, r)
}

func TestAgentBuffersThroughHubOutage(t *testing.T) {
	open, _ := openAndClosed(t)
	h, err := NewHub(HubConfig{
		Token: testToken, Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	h.Sink = sink
	f := &flakyHub{next: h.Handler()}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a := runAgent(t, Config{Name: "a", Hub: srv.URL, Token: testToken, ReportEvery: 30 * time.Millisecond, Buffer: 5})
	waitFor(t, 10*time.Second, "first results", func() bool { return len(sink.results()) > 0 })

	f.down.Store(true)
	outage := time.Now()
	waitFor(t, 10*time.Second, "results dropped during the outage", func() bool {
		_, dropped := a.buf.stats()
		return dropped >= 3
	})
	pending, _ := a.buf.stats()
	if pending > 5 {
		t.Errorf("%d results pending, buffer is 5", pending)
	}
	f.down.Store(false)
	waitFor(t, 10*time.Second, "results after the outage", func() bool {
		rs := sink.results()
		return len(rs) > 0 && rs[len(rs)-1].Time.After(outage)
	})
	// The newest results survived, the oldest were dropped and counted.
	ags := h.Agents()
	if ags[0].Dropped < 3 {
		t.Errorf("hub saw dropped=%d, want the agent's count (>= 3)", ags[0].Dropped)
	}
	if body := get(t, a.Handler(), PathMetrics, testToken, http.StatusOK); !strings.Contains(body, "reach_agent_results_dropped_total") || !strings.Contains(body, "reach_agent_hub_errors_total") {
		t.Errorf("/metrics lacks the drop and hub error counters:\n%s", body)
	}
}

func TestBufferDropsOldest(t *testing.T) {
	b := newBuffer(3)
	for i := range 5 {
		b.push(Result{Target: string(rune('a' + i))})
	}
	got, end := b.peek(10)
	if len(got) != 3 || got[0].Target != "c" || got[2].Target != "e" {
		t.Fatalf("peek %v, want c d e", got)
	}
	// Two more arrive while c d e are being sent: c and d are dropped.
	b.push(Result{Target: "f"})
	b.push(Result{Target: "g"})
	b.ack(end) // removes e only; c and d are gone already
	got, _ = b.peek(10)
	if len(got) != 2 || got[0].Target != "f" || got[1].Target != "g" {
		t.Fatalf("after ack: %v, want f g", got)
	}
	if _, dropped := b.stats(); dropped != 4 {
		t.Errorf("dropped %d, want 4", dropped)
	}
	b.ack(end) // a stale ack is harmless
	if p, _ := b.stats(); p != 2 {
		t.Errorf("pending %d after stale ack, want 2", p)
	}
}

func TestEvidenceAndRateLimit(t *testing.T) {
	open, _ := openAndClosed(t)
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	c, err := NewClient(srv.URL, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.Evidence(context.Background(), open)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev.Host, "agent a (") {
		t.Errorf("evidence from %q, want agent a", ev.Host)
	}
	found := false
	for _, s := range ev.Listening {
		if s.Local == open {
			found = true
			if len(s.Processes) > 0 && s.Processes[0].PID != os.Getpid() {
				t.Errorf("socket %v owned by %+v, want this test (pid %d)", s.Local, s.Processes, os.Getpid())
			}
		}
	}
	if !found {
		t.Errorf("evidence lacks our listener %v: %+v", open, ev)
	}
	if len(ev.Addresses) == 0 {
		t.Error("evidence lists no host addresses")
	}
	// Burst is 2 at 1/s: one more passes, then the limit bites.
	var limited error
	for range 5 {
		if _, err := c.Evidence(context.Background(), open); err != nil {
			limited = err
			break
		}
	}
	if !errors.Is(limited, ErrRateLimited) {
		t.Errorf("after a burst: %v, want ErrRateLimited", limited)
	}
	fast, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"127.0.0.1:0", "127.0.0.1", "x", "", "127.0.0.1:65536"} {
		get(t, fast.Handler(), PathEvidence+"?addr="+bad, testToken, http.StatusBadRequest)
	}
}

// Run leaves no goroutine behind once it returns.
func TestAgentRunLeaksNothing(t *testing.T) {
	open, _ := openAndClosed(t)
	_, srv := newTestHub(t, HubConfig{
		Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	before := runtime.NumGoroutine()
	a, err := New(Config{Name: "a", Hub: srv.URL, Token: testToken, HTTPClient: hc, ReportEvery: 20 * time.Millisecond, RefreshEvery: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, 10*time.Second, "results sent", func() bool {
		_, dropped := a.buf.stats()
		return dropped == 0 && testutilSent(a) > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	waitFor(t, 10*time.Second, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= before })
}

func testutilSent(a *Agent) float64 {
	m := &dto.Metric{}
	a.m.sent.Write(m)
	return m.GetCounter().GetValue()
}

// FuzzHubIngest posts arbitrary bodies: the hub answers 200 or 400 and
// never stores a result outside the agent's probe list.
func FuzzHubIngest(f *testing.F) {
	f.Add([]byte(`{"agent":"a","results":[{"target":"127.0.0.1:1","class":"open","rtt":"1ms","time":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"agent":"a","results":[{"target":"x","class":"refused"}],"dropped":3}`))
	f.Add([]byte(`{"agent":"b"}`))
	f.Add([]byte(`{"results":[{"rtt":5}]}`))
	h, err := NewHub(HubConfig{Token: testToken,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: "127.0.0.1:1"}}})
	if err != nil {
		f.Fatal(err)
	}
	handler := h.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, PathResults, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		m := h.Matrix()
		if len(m.Targets) != 1 || m.Targets[0] != "127.0.0.1:1" {
			t.Fatalf("matrix targets %v", m.Targets)
		}
	})
}

// An agent's advertised URL is used only on its configured address.
func TestHubAdvertisedAgentURL(t *testing.T) {
	h, srv := newTestHub(t, HubConfig{Hosts: []HostConfig{
		{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")},
		{Name: "b", Addr: netip.MustParseAddr("127.0.0.2"), Agent: "http://127.0.0.2:9"},
	}})
	c, err := newClient(srv.URL, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(name, adv string) {
		t.Helper()
		var pl ProbeList
		if err := c.call(context.Background(), http.MethodGet, PathTargets, map[string][]string{"agent": {name}, "advertise": {adv}}, nil, &pl); err != nil {
			t.Fatal(err)
		}
	}
	urls := func() map[string]string {
		m := map[string]string{}
		for _, a := range h.Agents() {
			m[a.Name] = a.Agent
		}
		return m
	}
	for _, bad := range []string{"http://198.18.0.9:7070", "http://127.0.0.1", "ftp://127.0.0.1:7070", "http://127.0.0.1:7070/x", "http://localhost:7070"} {
		ask("a", bad)
		if got := urls()["a"]; got != "" {
			t.Errorf("advertised %q accepted as %q", bad, got)
		}
	}
	ask("a", "https://127.0.0.1:7070/")
	ask("b", "http://127.0.0.2:7070") // the config's URL wins
	if got := urls(); got["a"] != "https://127.0.0.1:7070" || got["b"] != "http://127.0.0.2:9" {
		t.Errorf("agent URLs %v", got)
	}
}

// A bad name or a negative setting is refused: time.NewTicker would panic on a negative
// period, and a negative buffer would drop every result.
func TestNewRefusesBadSettings(t *testing.T) {
	if _, err := New(Config{Name: "a<b>", Hub: "http://127.0.0.1:1", Token: testToken}); err == nil || !strings.Contains(err.Error(), `name "a<b>"`) {
		t.Errorf("New with a bad name: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"Buffer", Config{Buffer: -5}},
		{"ReportEvery", Config{ReportEvery: -time.Second}},
		{"RefreshEvery", Config{RefreshEvery: -time.Second}},
		{"Concurrency", Config{Concurrency: -1}},
		{"QueryRate", Config{QueryRate: -1}},
	} {
		tc.cfg.Name, tc.cfg.Hub, tc.cfg.Token = "a", "http://127.0.0.1:1", testToken
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), "negative") {
			t.Errorf("New with negative %s: %v, want an error naming it", tc.name, err)
		}
	}
}

// With CompactMetrics the duration histogram is the agent's alone and each
// target keeps a last-duration gauge; without it every target has its own
// histogram. Either way success and failures stay per target.
func TestAgentCompactMetrics(t *testing.T) {
	for _, tc := range []struct {
		compact bool
		want    []string // lines (or prefixes) that must appear; %s is the open target
		never   []string
	}{
		{false,
			[]string{`reach_agent_probe_duration_seconds_count{source="a",target="%s"}`},
			[]string{`reach_agent_probe_duration_last_seconds`}},
		{true,
			[]string{`reach_agent_probe_duration_seconds_count{source="a"}`, `reach_agent_probe_duration_last_seconds{source="a",target="%s"}`},
			[]string{`reach_agent_probe_duration_seconds_count{source="a",target=`}},
	} {
		t.Run(fmt.Sprintf("compact=%v", tc.compact), func(t *testing.T) {
			open, closed := openAndClosed(t)
			_, srv := newTestHub(t, HubConfig{
				Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond,
				Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
				Pairs: []PairConfig{{From: "a", To: open.String()}, {From: "a", To: closed.String()}},
			})
			// The test polls /metrics; the query rate limit must not answer 429.
			a := runAgent(t, Config{Name: "a", Hub: srv.URL, Token: testToken, ReportEvery: 50 * time.Millisecond, CompactMetrics: tc.compact, QueryRate: 1000})
			var body string
			waitFor(t, 10*time.Second, "both targets probed", func() bool {
				body = get(t, a.Handler(), PathMetrics, testToken, http.StatusOK)
				return strings.Contains(body, `reach_agent_probe_success{source="a",target="`+open.String()+`"} 1`) &&
					strings.Contains(body, `reach_agent_probe_failures_total{class="refused",source="a",target="`+closed.String()+`"}`)
			})
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "%s", open.String()); !strings.Contains(body, w) {
					t.Errorf("/metrics lacks %s\n%s", w, body)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(body, n) {
					t.Errorf("/metrics has %s\n%s", n, body)
				}
			}
		})
	}
}

// The doctor learns how asking an agent failed, so it can say what to do:
// wrong token, rate limit, nothing listening, a hub that knows no agent.
func TestEvidenceFailures(t *testing.T) {
	open, closed := openAndClosed(t)
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }))
	defer broken.Close()
	_, hub := newTestHub(t, HubConfig{Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}}})

	fast, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	fastSrv := httptest.NewServer(fast.Handler())
	defer fastSrv.Close()
	wrong, _ := NewClient(fastSrv.URL, "nope", nil)
	good, _ := NewClient(srv.URL, testToken, nil)
	gone, _ := NewClient("http://"+closed.String(), testToken, nil)
	bad, _ := NewClient(broken.URL, testToken, nil)
	disc, _ := NewDiscovery(hub.URL, testToken, nil)
	good.Evidence(context.Background(), open) // burst is 2 at 1/s: the next two use it up
	good.Evidence(context.Background(), open)
	for _, tc := range []struct {
		name   string
		remote doctor.RemoteEvidence
		want   doctor.AgentFailure
		is     error
	}{
		{"wrong token", wrong, doctor.AgentUnauthorized, ErrUnauthorized},
		{"rate limited", good, doctor.AgentRateLimited, ErrRateLimited},
		{"nothing listens", gone, doctor.AgentUnreachable, syscall.ECONNREFUSED},
		{"server error", bad, doctor.AgentFailed, nil},
		{"hub knows no agent", disc, doctor.AgentNone, ErrNoAgent},
	} {
		_, err := tc.remote.Evidence(context.Background(), open)
		var ae *doctor.AgentError
		if !errors.As(err, &ae) || ae.Failure != tc.want || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: %v, want a doctor.AgentError %s wrapping %v", tc.name, err, tc.want, tc.is)
			continue
		}
		// Who was asked is typed: the hub, or the agent at its URL.
		if isHub := tc.remote == disc; ae.Hub != isHub || ae.URL == "" || !strings.HasPrefix(ae.URL, "http://127.0.0.1:") {
			t.Errorf("%s: asked hub=%v at %q, want hub=%v at a loopback URL", tc.name, ae.Hub, ae.URL, isHub)
		}
	}
}
