package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/internal/version"
	"github.com/reach-tools/reach/probe"
)

const testToken = "s3cret-token"

// fakeHub speaks the hub's side of the protocol for the agent's tests: it
// hands out one probe list per agent, lists the agents it is given, keeps
// every batch it is sent and, while down, answers 503 as a hub in an
// outage would. The real hub is tested against the real agent in package
// hub.
type fakeHub struct {
	lists  map[string]ProbeList
	agents []AgentInfo
	down   atomic.Bool

	mu      sync.Mutex
	batches []Batch
}

func newFakeHub(t *testing.T, lists ...ProbeList) (*fakeHub, *httptest.Server) {
	t.Helper()
	f := &fakeHub{lists: map[string]ProbeList{}, agents: []AgentInfo{}}
	for _, pl := range lists {
		f.lists[pl.Agent] = pl
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathTargets, func(w http.ResponseWriter, r *http.Request) {
		pl, ok := f.lists[r.URL.Query().Get("agent")]
		if !ok {
			http.Error(w, "unknown agent", http.StatusNotFound)
			return
		}
		writeJSON(w, pl)
	})
	mux.HandleFunc("POST "+PathResults, func(w http.ResponseWriter, r *http.Request) {
		var b Batch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.batches = append(f.batches, b)
		f.mu.Unlock()
		writeJSON(w, IngestReply{Accepted: len(b.Results)})
	})
	mux.HandleFunc("GET "+PathAgents, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, f.agents) })
	guarded := guard(func() string { return testToken }, nil, mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		guarded.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// results are the results of every batch received, in order.
func (f *fakeHub) results() []Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []Result
	for _, b := range f.batches {
		rs = append(rs, b.Results...)
	}
	return rs
}

// dropped is what the latest batch said the agent dropped.
func (f *fakeHub) dropped() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) == 0 {
		return 0
	}
	return f.batches[len(f.batches)-1].Dropped
}

// probeList gives agent a the targets, probed every interval.
func probeList(interval time.Duration, targets ...netip.AddrPort) ProbeList {
	pl := ProbeList{Agent: "a", Interval: Duration(interval), Timeout: Duration(interval)}
	for _, ap := range targets {
		pl.Targets = append(pl.Targets, Target{ID: ap.String(), Addr: ap})
	}
	return pl
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

// The agent probes its list and reports each result with its class and
// errno, and its own metrics carry source and target.
func TestAgentReports(t *testing.T) {
	open, closed := testnet.Serve(t, testnet.HangUp), testnet.ClosedPort(t)
	hub, srv := newFakeHub(t, probeList(100*time.Millisecond, open, closed))
	a := runAgent(t, Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond, ReportEvery: 50 * time.Millisecond})

	want := map[string]probe.Class{open.String(): probe.Open, closed.String(): probe.Refused}
	testnet.Eventually(t, 10*time.Second, "both targets reported", func() bool {
		seen := map[string]bool{}
		for _, r := range hub.results() {
			seen[r.Target] = true
		}
		return len(seen) == 2
	})
	for _, r := range hub.results() {
		if r.Class != want[r.Target] || r.Addr.String() != r.Target {
			t.Errorf("reported %s for %s at %v, want %s", r.Class, r.Target, r.Addr, want[r.Target])
		}
		if (r.Class == probe.Refused) != (r.Errno != 0) || r.Time.IsZero() {
			t.Errorf("result %+v: want the errno behind refused only, and the time", r)
		}
	}

	// The agent's own metrics carry source and target.
	body := get(t, a.Handler(), PathMetrics, testToken, http.StatusOK)
	for _, line := range []string{
		`reach_agent_probe_success{source="a",target="` + open.String() + `"} 1`,
		`reach_agent_probe_success{source="a",target="` + closed.String() + `"} 0`,
		`reach_agent_probe_failures_total{class="refused",source="a",target="` + closed.String() + `"}`,
		`reach_build_info{commit="` + version.Get().Commit + `",`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %s\n%s", line, body)
		}
	}
}

// Calls between hub and agent say which reach makes them.
func TestClientUserAgent(t *testing.T) {
	agents := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agents <- r.UserAgent()
		w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Evidence(t.Context(), netip.MustParseAddrPort("127.0.0.1:22")); err != nil {
		t.Fatal(err)
	}
	if got, want := <-agents, "reach/"+version.Get().Version; got != want {
		t.Errorf("User-Agent %q, want %q", got, want)
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
	_, srv := newFakeHub(t, probeList(time.Second))
	a, err := New(Config{Name: "a", Hub: srv.URL, Token: testToken, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{PathEvidence + "?addr=127.0.0.1:22", PathMetrics, "/debug/pprof/"} {
		for _, tok := range []string{"", "wrong", testToken + "x", testToken[:len(testToken)-1]} {
			t.Run(path+"/"+tok, func(t *testing.T) {
				get(t, a.Handler(), path, tok, http.StatusUnauthorized)
			})
		}
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
}

// Through a hub outage the agent keeps probing into its bounded buffer,
// drops the oldest results and counts them, and reports the newest and the
// count once the hub is back.
func TestAgentBuffersThroughHubOutage(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	hub, srv := newFakeHub(t, probeList(20*time.Millisecond, open))
	a := runAgent(t, Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond, ReportEvery: 30 * time.Millisecond, Buffer: 5})
	testnet.Eventually(t, 10*time.Second, "first results", func() bool { return len(hub.results()) > 0 })

	hub.down.Store(true)
	outage := time.Now()
	testnet.Eventually(t, 10*time.Second, "results dropped during the outage", func() bool {
		_, dropped := a.buf.stats()
		return dropped >= 3
	})
	pending, _ := a.buf.stats()
	if pending > 5 {
		t.Errorf("%d results pending, buffer is 5", pending)
	}
	hub.down.Store(false)
	testnet.Eventually(t, 10*time.Second, "results after the outage", func() bool {
		rs := hub.results()
		return len(rs) > 0 && rs[len(rs)-1].Time.After(outage)
	})
	// The newest results survived, the oldest were dropped and counted.
	if d := hub.dropped(); d < 3 {
		t.Errorf("the hub was told dropped=%d, want the agent's count (>= 3)", d)
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
	got, seq := b.peek(10)
	if len(got) != 3 || got[0].Target != "c" || got[2].Target != "e" || seq != 3 {
		t.Fatalf("peek %v from %d, want c d e from 3 (results are numbered from 1)", got, seq)
	}
	if again, seq2 := b.peek(10); seq2 != seq || len(again) != 3 {
		t.Fatalf("a resend starts at %d with %d results, want the same numbers", seq2, len(again))
	}
	end := seq + uint64(len(got))
	// Two more arrive while c d e are being sent: c and d are dropped.
	b.push(Result{Target: "f"})
	b.push(Result{Target: "g"})
	b.ack(end) // removes e only; c and d are gone already
	got, seq = b.peek(10)
	if len(got) != 2 || got[0].Target != "f" || got[1].Target != "g" || seq != 6 {
		t.Fatalf("after ack: %v from %d, want f g from 6", got, seq)
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
	open := testnet.Serve(t, testnet.HangUp)
	// One request per 20 s, a burst of one: the first query passes, and no
	// token comes back while a loaded machine gathers evidence.
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 0.05})
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
	// The burst is spent: the limit bites at once.
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
	open := testnet.Serve(t, testnet.HangUp)
	_, srv := newFakeHub(t, probeList(50*time.Millisecond, open))
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	before := runtime.NumGoroutine()
	a, err := New(Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond, HTTPClient: hc, ReportEvery: 20 * time.Millisecond, RefreshEvery: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	testnet.Eventually(t, 10*time.Second, "results sent", func() bool {
		_, dropped := a.buf.stats()
		return dropped == 0 && testutilSent(a) > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	testnet.Eventually(t, 10*time.Second, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= before })
}

func testutilSent(a *Agent) float64 {
	m := &dto.Metric{}
	a.m.sent.Write(m)
	return m.GetCounter().GetValue()
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
			open, closed := testnet.Serve(t, testnet.HangUp), testnet.ClosedPort(t)
			_, srv := newFakeHub(t, probeList(100*time.Millisecond, open, closed))
			// The test polls /metrics; the query rate limit must not answer 429.
			a := runAgent(t, Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond, ReportEvery: 50 * time.Millisecond, CompactMetrics: tc.compact, QueryRate: 1000})
			var body string
			testnet.Eventually(t, 10*time.Second, "both targets probed", func() bool {
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
	open, closed := testnet.Serve(t, testnet.HangUp), testnet.ClosedPort(t)
	// An instant Gather: the burst (2 at 1/s) must be spent before a token
	// comes back, and a real one can take a second under load.
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1,
		Gather: func(context.Context) doctor.HostEvidence { return doctor.HostEvidence{} }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }))
	defer broken.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "client certificate does not name agent a", http.StatusForbidden)
	}))
	defer refusing.Close()
	hub, hubSrv := newFakeHub(t)
	hub.agents = []AgentInfo{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}} // no agent URL

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
	certRefused, _ := NewClient(refusing.URL, testToken, nil)
	disc, _ := NewDiscovery(hubSrv.URL, testToken, nil)
	// An agent reached but slower than the caller's timeout is not
	// unreachable: a longer timeout gets its answer.
	slowSrv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slowSrv.Close()
	slowAgent, _ := NewClient(slowSrv.URL, testToken, &http.Client{Timeout: 100 * time.Millisecond})
	good.Evidence(context.Background(), open) // burst is 2 at 1/s: the next two use it up
	good.Evidence(context.Background(), open)
	for _, tc := range []struct {
		name   string
		remote doctor.RemoteEvidence
		want   doctor.AgentFailure
		is     error
	}{
		{"wrong token", wrong, doctor.AgentUnauthorized, ErrUnauthorized},
		{"certificate refused", certRefused, doctor.AgentUnauthorized, ErrUnauthorized},
		{"rate limited", good, doctor.AgentRateLimited, ErrRateLimited},
		{"nothing listens", gone, doctor.AgentUnreachable, syscall.ECONNREFUSED},
		{"connected, no answer in time", slowAgent, doctor.AgentSlow, ErrSlow},
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

// TestFlushSendsWhatWasBuffered: a flush sends what was buffered when it
// began. A hub replica answers once its store has a batch, and results
// arrive during every post: flush went on posting them for ever, so the
// report loop never came back (the agent never logged that the hub was
// reachable again after a failover).
func TestFlushSendsWhatWasBuffered(t *testing.T) {
	var a *Agent
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) > 3 {
			http.Error(w, "still flushing", http.StatusServiceUnavailable)
			return
		}
		a.buf.push(Result{Target: "late"}) // probed while the hub stores the batch
		json.NewEncoder(w).Encode(IngestReply{Accepted: 1})
	}))
	defer srv.Close()
	var err error
	if a, err = New(Config{Name: "a", Hub: srv.URL, Token: testToken}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a.buf.push(Result{Target: "early"})
	}
	if err := a.flush(t.Context(), false); err != nil {
		t.Fatalf("flush: %v after %d posts, want it to end after the first", err, posts.Load())
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
	if batch, _ := a.buf.peek(MaxBatch); len(batch) != 1 || batch[0].Target != "late" {
		t.Errorf("left buffered: %+v, want the one result that came during the post", batch)
	}
}
