package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// counterValue reads a counter from reg: the one whose labels include
// every name=value pair in labels; -1 when there is none.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// A token holder forges results: each is refused (or its text cut) and
// counted by reason, in the reply and in the hub's metric; only the honest
// result reaches the sink and the matrix. All were accepted: 2,000 invented
// classes became 2,000 series, a transition was stored in year 1.
func TestHostileForgedResults(t *testing.T) {
	open := netip.MustParseAddrPort("127.0.0.1:1")
	h, srv := newTestHub(t, Config{
		Interval: 10 * time.Second, Timeout: 3 * time.Second,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")},
			{Name: "b", Addr: netip.MustParseAddr("127.0.0.2")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	reg := prometheus.NewRegistry()
	h.Metrics = NewMetrics(reg)
	logs := &testnet.Buffer{}
	h.Logger = slog.New(slog.NewTextHandler(logs, nil))
	sink := &memSink{}
	h.Sink = sink
	now := time.Now()
	good := agent.Result{Target: open.String(), Class: probe.Refused, Errno: 111,
		RTT: agent.Duration(time.Millisecond), Time: now.Add(-time.Second), Error: "connection refused"}
	with := func(f func(*agent.Result)) agent.Result { r := good; f(&r); return r }
	cases := []struct {
		name string
		res  agent.Result
		why  agent.Reason
	}{
		{"forged class", with(func(r *agent.Result) { r.Class = "<script>alert(1)</script>" }), agent.RefusedClass},
		{"empty class", with(func(r *agent.Result) { r.Class = "" }), agent.RefusedClass},
		{"negative rtt", with(func(r *agent.Result) { r.RTT = agent.Duration(-5 * time.Second) }), agent.RefusedRTT},
		{"rtt beyond timeout", with(func(r *agent.Result) {
			r.RTT = agent.Duration(3*time.Second + RTTMargin + time.Millisecond)
		}), agent.RefusedRTT},
		{"errno", with(func(r *agent.Result) { r.Errno = -1 }), agent.RefusedErrno},
		{"year 1", with(func(r *agent.Result) { r.Time = time.Time{} }), agent.RefusedTooOld},
		{"older than a buffer", with(func(r *agent.Result) {
			r.Time = now.Add(-Window(h.lists["a"]) - time.Minute)
		}), agent.RefusedTooOld},
		{"far future", with(func(r *agent.Result) { r.Time = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }),
			agent.RefusedFuture},
		{"beyond the skew", with(func(r *agent.Result) { r.Time = now.Add(MaxSkew + time.Minute) }),
			agent.RefusedFuture},
		{"unassigned pair", with(func(r *agent.Result) { r.Target = "127.0.0.2:22" }), agent.RefusedUnassigned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(c.why))
			var reply agent.IngestReply
			if _, err := call(nil, srv.URL, http.MethodPost, agent.PathResults, nil,
				agent.Batch{Agent: "a", Results: []agent.Result{c.res}}, &reply); err != nil {
				t.Fatal(err)
			}
			if reply.Accepted != 0 || reply.Rejected != 1 || reply.Refused[c.why] != 1 {
				t.Errorf("reply %+v, want 1 refused for %s", reply, c.why)
			}
			after := counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(c.why))
			if after != before+1 {
				t.Errorf("reach_hub_rejected_results_total{reason=%q} went %v -> %v, want +1", c.why, before, after)
			}
		})
	}
	// An agent the config does not list.
	var reply agent.IngestReply
	if _, err := call(nil, srv.URL, http.MethodPost, agent.PathResults, nil,
		agent.Batch{Agent: "nobody", Results: []agent.Result{good, good}}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Refused[agent.RefusedUnknownAgent] != 2 {
		t.Errorf("unknown agent: reply %+v, want 2 refused", reply)
	}
	if got := sink.results(); len(got) != 0 {
		t.Fatalf("the sink got forged results: %+v", got)
	}

	// A 7.8 MB error text is cut, the result kept; a skewed time within
	// MaxSkew is taken as the hub's now.
	huge := with(func(r *agent.Result) { r.Error = strings.Repeat("é", 3_900_000) })
	skewed := with(func(r *agent.Result) { r.Time = time.Now().Add(MaxSkew / 2) })
	if _, err := call(nil, srv.URL, http.MethodPost, agent.PathResults, nil,
		agent.Batch{Agent: "a", Results: []agent.Result{huge, skewed}}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Accepted != 2 || reply.Rejected != 0 || reply.Truncated != 1 {
		t.Errorf("huge error text: reply %+v, want 2 accepted, 1 truncated", reply)
	}
	got := sink.results()
	if len(got) != 2 {
		t.Fatalf("sink has %d results, want 2", len(got))
	}
	if n := len(got[0].Error); n > agent.MaxErrorText || !strings.HasPrefix(got[0].Error, "éé") ||
		!strings.HasSuffix(got[0].Error, "(cut by the hub)") {
		t.Errorf("error text of %d bytes stored: %.40q…", n, got[0].Error)
	}
	if got[1].Time.After(time.Now()) {
		t.Errorf("a skewed time was stored as %v, in the future", got[1].Time)
	}
	if v := counterValue(t, reg, "reach_hub_truncated_errors_total"); v != 1 {
		t.Errorf("reach_hub_truncated_errors_total = %v, want 1", v)
	}
	m := h.Matrix()
	if len(m.Targets) != 1 || m.Cells[0][0] == nil || m.Cells[0][0].Class != probe.Refused {
		t.Errorf("matrix %+v, want a's one pair, refused", m)
	}
	for _, r := range agent.Reasons {
		t.Logf("rejected %-14s %v", r, counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(r)))
	}
	// Eleven batches with refusals, two warnings: one for a, one for the
	// unknown agent; the rest are only counted.
	if n := strings.Count(logs.String(), "agent results refused"); n != 2 {
		t.Errorf("%d warnings of refused results, want 2 (one a minute per agent):\n%s", n, logs)
	}
}

// post sends one batch as agent a would and returns the hub's reply.
func post(t *testing.T, base string, b agent.Batch) agent.IngestReply {
	t.Helper()
	var reply agent.IngestReply
	if _, err := call(nil, base, http.MethodPost, agent.PathResults, nil, b, &reply); err != nil {
		t.Fatal(err)
	}
	return reply
}

// One batch replayed three times is stored once; the replays are refused
// as duplicates and counted. They were stored three times, and pushed out
// every agent's real samples.
func TestHostileReplayedBatch(t *testing.T) {
	open := netip.MustParseAddrPort("127.0.0.1:1")
	h, srv := newTestHub(t, Config{
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	reg := prometheus.NewRegistry()
	h.Metrics = NewMetrics(reg)
	sink := &memSink{}
	h.Sink = sink
	start := time.Now().Add(-time.Minute)
	results := func(from, n int) []agent.Result {
		var rs []agent.Result
		for i := from; i < from+n; i++ {
			rs = append(rs, agent.Result{Target: open.String(), Class: probe.Open,
				RTT: agent.Duration(time.Millisecond), Time: start.Add(time.Duration(i) * time.Second)})
		}
		return rs
	}
	run := start.UnixNano()
	batch := agent.Batch{Agent: "a", Run: run, Seq: 1, Results: results(1, 3)}
	if r := post(t, srv.URL, batch); r.Accepted != 3 || r.Next != 4 {
		t.Fatalf("first: %+v, want 3 accepted, next 4", r)
	}
	for i := range 3 {
		if r := post(t, srv.URL, batch); r.Accepted != 0 || r.Refused[agent.RefusedDuplicate] != 3 {
			t.Errorf("replay %d: %+v, want 3 refused as duplicates", i+1, r)
		}
	}
	// A resend that overlaps (results 2-3 again, 4-5 new) keeps the new ones.
	if r := post(t, srv.URL, agent.Batch{Agent: "a", Run: run, Seq: 2, Results: results(2, 4)}); r.Accepted != 2 ||
		r.Refused[agent.RefusedDuplicate] != 2 || r.Next != 6 {
		t.Errorf("overlapping resend: %+v, want 2 accepted, 2 duplicates, next 6", r)
	}
	// A later run of the agent (it restarted) starts over; the earlier
	// run's batches are then refused whole.
	if r := post(t, srv.URL, agent.Batch{Agent: "a", Run: run + 1, Seq: 1, Results: results(6, 1)}); r.Accepted != 1 {
		t.Errorf("new run: %+v, want 1 accepted", r)
	}
	if r := post(t, srv.URL, agent.Batch{Agent: "a", Run: run, Seq: 6, Results: results(7, 1)}); r.Refused[agent.RefusedOldRun] != 1 {
		t.Errorf("batch of an earlier run: %+v, want refused as old_run", r)
	}
	// Stripping the sequence numbers does not get a replay in.
	if r := post(t, srv.URL, agent.Batch{Agent: "a", Results: results(1, 3)}); r.Refused[agent.RefusedUnsequenced] != 3 {
		t.Errorf("unsequenced replay: %+v, want 3 refused as unsequenced", r)
	}
	// Nor does a run that starts in the future or numbers that overflow.
	for _, b := range []agent.Batch{
		{Agent: "a", Run: time.Now().Add(time.Hour).UnixNano(), Seq: 1, Results: results(8, 1)},
		{Agent: "a", Run: run + 1, Seq: math.MaxUint64, Results: results(8, 2)},
		{Agent: "a", Run: run + 1, Results: results(8, 1)},
	} {
		if r := post(t, srv.URL, b); r.Accepted != 0 || r.Refused[agent.RefusedSequence] != len(b.Results) {
			t.Errorf("run %d seq %d: %+v, want refused as sequence", b.Run, b.Seq, r)
		}
	}
	if got := len(sink.results()); got != 6 {
		t.Errorf("the sink has %d results, want 6 (each once)", got)
	}
	want := map[agent.Reason]float64{agent.RefusedDuplicate: 11, agent.RefusedOldRun: 1,
		agent.RefusedUnsequenced: 3, agent.RefusedSequence: 4}
	for r, n := range want {
		if got := counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(r)); got != n {
			t.Errorf("reach_hub_rejected_results_total{reason=%q} = %v, want %v", r, got, n)
		}
	}

	// An agent that predates sequence numbers is accepted, and counted.
	h2, srv2 := newTestHub(t, Config{
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	reg2 := prometheus.NewRegistry()
	h2.Metrics = NewMetrics(reg2)
	for range 2 {
		if r := post(t, srv2.URL, agent.Batch{Agent: "a", Results: results(1, 1)}); r.Accepted != 1 || r.Next != 0 {
			t.Errorf("unsequenced batch from an old agent: %+v, want accepted", r)
		}
	}
	if got := counterValue(t, reg2, "reach_hub_unsequenced_batches_total"); got != 2 {
		t.Errorf("reach_hub_unsequenced_batches_total = %v, want 2", got)
	}
}

// relay stands between an agent and a hub: it can lose the hub's answers
// (the hub stored the batch, the agent hears 503), be down, or be pointed
// at a new hub (a restart).
type relay struct {
	mode  atomic.Int32 // relayPass, relayLoseReply, relayDown
	hub   atomic.Pointer[http.Handler]
	posts atomic.Int32 // batches posted while not passing
}

const (
	relayPass int32 = iota
	relayLoseReply
	relayDown
)

func (f *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := f.mode.Load()
	if r.Method == http.MethodPost && mode != relayPass {
		f.posts.Add(1)
	}
	switch mode {
	case relayDown:
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
	case relayLoseReply:
		if r.Method == http.MethodPost {
			(*f.hub.Load()).ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "the answer was lost", http.StatusServiceUnavailable)
			return
		}
		fallthrough
	default:
		(*f.hub.Load()).ServeHTTP(w, r)
	}
}

// agentCount reads a value of the agent's /metrics: the line that starts
// with prefix.
func agentCount(t *testing.T, a *agent.Agent, prefix string) float64 {
	t.Helper()
	for _, line := range strings.Split(get(t, a.Handler(), agent.PathMetrics, testToken, http.StatusOK), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the agent's metrics", prefix)
	return 0
}

// A real agent resends what the hub did not acknowledge with the same
// sequence numbers: a batch the hub stored but whose answer was lost is
// not stored twice, and one sent while the hub was down (then restarted,
// knowing nothing of the agent) is not lost. Every result the agent
// probed is stored exactly once.
func TestAgentResendNeitherLostNorDoubled(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	cfg := Config{Token: testToken, Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}}}
	sink := &memSink{}
	f := &relay{}
	var regs []*prometheus.Registry
	newHub := func() {
		h, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		h.Sink, h.Metrics = sink, NewMetrics(reg)
		regs = append(regs, reg)
		var hh http.Handler = h.Handler()
		f.hub.Store(&hh)
	}
	newHub()
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, err := agent.New(agent.Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond,
		ReportEvery: 30 * time.Millisecond, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stored := func() int { return len(sink.results()) }
	testnet.Eventually(t, 10*time.Second, "first results", func() bool { return stored() > 0 })

	// The hub stores batches, but the agent never hears so: it resends.
	f.mode.Store(relayLoseReply)
	testnet.Eventually(t, 10*time.Second, "answers lost", func() bool { return f.posts.Load() >= 3 })
	f.mode.Store(relayPass)
	n := stored()
	testnet.Eventually(t, 10*time.Second, "results after the lost answers", func() bool { return stored() > n })

	// The hub is down, then restarts knowing nothing of the agent.
	f.posts.Store(0)
	f.mode.Store(relayDown)
	testnet.Eventually(t, 10*time.Second, "posts while down", func() bool { return f.posts.Load() >= 3 })
	newHub()
	f.mode.Store(relayPass)
	n = stored()
	testnet.Eventually(t, 10*time.Second, "results after the restart", func() bool { return stored() > n })

	cancel() // the agent sends what it holds
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	probed := agentCount(t, a, `reach_agent_probe_duration_seconds_count{source="a",target="`+open.String()+`"}`)
	pending := agentCount(t, a, `reach_agent_results_pending{source="a"}`)
	dropped := agentCount(t, a, `reach_agent_results_dropped_total{source="a"}`)
	rs := sink.results()
	times := map[time.Time]int{}
	for _, r := range rs {
		times[r.Time]++
	}
	for tm, c := range times {
		if c > 1 {
			t.Errorf("the result of %v was stored %d times", tm, c)
		}
	}
	if float64(len(rs)) != probed-pending || dropped != 0 {
		t.Errorf("stored %d results; the agent probed %v, holds %v, dropped %v", len(rs), probed, pending, dropped)
	}
	dups := 0
	for _, reg := range regs {
		dups += int(counterValue(t, reg, "reach_hub_rejected_results_total",
			"reason", string(agent.RefusedDuplicate)))
	}
	if dups == 0 {
		t.Error("the hub refused no duplicates: the answers were not lost, the test proves nothing")
	}
	t.Logf("%d results stored once each; %d resent results refused as duplicates", len(rs), dups)
}

// postStatus sends one batch and returns the status, the Retry-After header
// and, on 200, the reply.
func postStatus(t *testing.T, base string, b agent.Batch) (int, string, agent.IngestReply) {
	t.Helper()
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return postBody(t, base, body)
}

// postBody is postStatus for a batch already encoded.
func postBody(t *testing.T, base string, body []byte) (int, string, agent.IngestReply) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+agent.PathResults, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply agent.IngestReply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), reply
}

// Per-agent caps: a batch of more than agent.MaxBatch results is refused
// whole (413); results or bytes beyond an agent's budget are refused whole
// (429 with Retry-After) and are not taken as sent, so the agent's resend
// is stored. Each is counted.
func TestHostileOverCap(t *testing.T) {
	open := netip.MustParseAddrPort("127.0.0.1:1")
	h, srv := newTestHub(t, Config{
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	reg := prometheus.NewRegistry()
	h.Metrics = NewMetrics(reg)
	sink := &memSink{}
	h.Sink = sink
	start := time.Now().Add(-time.Hour)
	results := func(n int) []agent.Result {
		rs := make([]agent.Result, n)
		for i := range rs {
			rs[i] = agent.Result{Target: open.String(), Class: probe.Open,
				Time: start.Add(time.Duration(i) * time.Millisecond)}
		}
		return rs
	}
	run := start.UnixNano()
	status, _, _ := postStatus(t, srv.URL, agent.Batch{Agent: "a", Run: run, Seq: 1,
		Results: results(agent.MaxBatch + 1)})
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("a batch of %d results: status %d, want 413", agent.MaxBatch+1, status)
	}

	h.mu.Lock()
	h.Limits = Limits{Results: 1, Burst: 10}
	h.mu.Unlock()
	if status, _, r := postStatus(t, srv.URL, agent.Batch{Agent: "a", Run: run, Seq: 1,
		Results: results(10)}); status != http.StatusOK || r.Accepted != 10 {
		t.Fatalf("within the budget: %d %+v, want 10 accepted", status, r)
	}
	over := agent.Batch{Agent: "a", Run: run, Seq: 11, Results: results(5)}
	status, retry, _ := postStatus(t, srv.URL, over)
	if status != http.StatusTooManyRequests || retry == "" {
		t.Errorf("over the results budget: status %d, Retry-After %q; want 429 with Retry-After", status, retry)
	}
	h.mu.Lock()
	h.Limits = Limits{BytesBurst: 100}
	h.mu.Unlock()
	if status, _, _ := postStatus(t, srv.URL, over); status != http.StatusTooManyRequests {
		t.Errorf("over the bytes budget: status %d, want 429", status)
	}
	// Reading a batch too large to take costs bytes too.
	if status, _, _ := postStatus(t, srv.URL, agent.Batch{Agent: "a", Run: run, Seq: 1,
		Results: results(agent.MaxBatch + 1)}); status != http.StatusTooManyRequests {
		t.Errorf("an oversized batch over the bytes budget: status %d, want 429", status)
	}
	h.mu.Lock()
	h.Limits = Limits{Results: 1e9, Bytes: 1e12} // refilled within the round trip
	h.mu.Unlock()
	// The refused batch was not taken: its resend is stored.
	if status, _, r := postStatus(t, srv.URL, over); status != http.StatusOK || r.Accepted != 5 {
		t.Errorf("resend after the refusals: %d %+v, want 5 accepted", status, r)
	}
	if got := len(sink.results()); got != 15 {
		t.Errorf("the sink has %d results, want 15", got)
	}
	for r, n := range map[agent.Reason]float64{agent.RefusedTooLarge: agent.MaxBatch + 1,
		agent.RefusedRate: 5, agent.RefusedBytes: 5 + agent.MaxBatch + 1} {
		if got := counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(r)); got != n {
			t.Errorf("reach_hub_rejected_results_total{reason=%q} = %v, want %v", r, got, n)
		}
	}
}

// A token holder posing as agent b sends everything of issue 11's row 6 to
// a running reach watch while agent a reports: the forged results, a 7.9 MB
// batch three times, a full batch replayed three times. Each is refused
// (or its text cut) and counted by kind; a's samples keep being stored and
// the store drops none. The replays were stored three times and pushed out
// every agent's real samples (reach_store_dropped_samples_total 171609).
func TestHostileAgentSparesRealSamples(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := testnet.Serve(t, testnet.HangUp)
	cfg, err := monitor.ParseConfig("reach.yaml", []byte(`agents:
  token_file: `+tok+`
  interval: 1s
  timeout: 500ms
  hosts: [{name: a, addr: 127.0.0.1}, {name: b, addr: 127.0.0.2}]
  pairs: [{from: a, to: "`+target.String()+`"}, {from: b, to: "`+target.String()+`"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	store, err := monitor.OpenStore(t.Context(), filepath.Join(dir, "reach.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	w, err := NewWatch(t.Context(), cfg, WatchOptions{NoDoctor: true, HubMetrics: NewMetrics(reg),
		Monitor: monitor.Options{Store: store, Metrics: monitor.NewMetrics(reg)}})
	if err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	runAgent(t, agent.Config{Name: "a", Hub: base, Token: testToken, ReportEvery: 50 * time.Millisecond})
	lastOfA := func() time.Time {
		st, err := w.Monitor.Status("a", target.String())
		if err != nil {
			return time.Time{}
		}
		return st.Last.Time
	}
	testnet.Eventually(t, 10*time.Second, "a's first result", func() bool { return !lastOfA().IsZero() })

	now := time.Now()
	good := agent.Result{Target: target.String(), Class: probe.Open, RTT: agent.Duration(time.Millisecond),
		Time: now.Add(-time.Second)}
	with := func(f func(*agent.Result)) agent.Result { r := good; f(&r); return r }
	run := now.Add(-time.Minute).UnixNano()
	forged := agent.Batch{Agent: "b", Run: run, Seq: 1, Results: []agent.Result{
		with(func(r *agent.Result) { r.Class = "<script>alert(1)</script>" }),
		with(func(r *agent.Result) { r.RTT = agent.Duration(-5 * time.Second) }),
		with(func(r *agent.Result) { r.Time = time.Time{} }),
		with(func(r *agent.Result) { r.Time = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }),
		with(func(r *agent.Result) { r.Target = "127.0.0.9:22" }),
		with(func(r *agent.Result) { r.Error = strings.Repeat("x", 7_800_000) }),
	}}
	if status, _, r := postStatus(t, base, forged); status != http.StatusOK || r.Accepted != 1 || r.Truncated != 1 {
		t.Errorf("forged batch: %d %+v, want the one with the long text accepted, cut", status, r)
	}
	one, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	big := agent.Batch{Agent: "b", Run: run, Seq: 7, Results: make([]agent.Result, 7_900_000/(len(one)+1))}
	for i := range big.Results {
		big.Results[i] = with(func(r *agent.Result) { r.Time = now.Add(-time.Duration(i) * time.Millisecond) })
	}
	bigBody, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if status, _, _ := postBody(t, base, bigBody); status != http.StatusRequestEntityTooLarge {
			t.Errorf("%d-byte batch of %d results, post %d: status %d, want 413",
				len(bigBody), len(big.Results), i+1, status)
		}
	}
	full := agent.Batch{Agent: "b", Run: run, Seq: 7, Results: big.Results[:agent.MaxBatch]}
	for i := range 4 {
		status, _, r := postStatus(t, base, full)
		if want := min(i, 1) * agent.MaxBatch; status != http.StatusOK || r.Refused[agent.RefusedDuplicate] != want {
			t.Errorf("full batch, post %d: %d %+v, want %d duplicates", i+1, status, r, want)
		}
	}

	// a's results keep coming, and the store dropped none of anyone's.
	attacked := time.Now()
	testnet.Eventually(t, 10*time.Second, "a's results after the attack", func() bool {
		return lastOfA().After(attacked)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := counterValue(t, reg, "reach_store_dropped_samples_total"); v != 0 {
		t.Errorf("reach_store_dropped_samples_total = %v, want 0", v)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "class" && !slices.Contains(probe.Classes, probe.Class(lp.GetValue())) {
					t.Errorf("series %s with class %q", mf.GetName(), lp.GetValue())
				}
			}
		}
	}
	want := map[agent.Reason]float64{agent.RefusedClass: 1, agent.RefusedRTT: 1, agent.RefusedTooOld: 1,
		agent.RefusedFuture: 1, agent.RefusedUnassigned: 1, agent.RefusedTooLarge: 3 * float64(len(big.Results)),
		agent.RefusedDuplicate: 3 * agent.MaxBatch}
	for _, r := range agent.Reasons {
		got := counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(r))
		t.Logf("reach_hub_rejected_results_total{reason=%q} %v", r, got)
		if got != want[r] {
			t.Errorf("reach_hub_rejected_results_total{reason=%q} = %v, want %v", r, got, want[r])
		}
	}
	t.Logf("reach_hub_truncated_errors_total %v", counterValue(t, reg, "reach_hub_truncated_errors_total"))
}

// capText never returns more than n bytes, cuts at a rune boundary, and
// keeps short strings as they are; caps too short for the mark go without.
func TestCapText(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("é", 40), strings.Repeat("x", 300), "日本語のテキスト"} {
		for _, n := range []int{0, 1, 3, 16, 39, 40, 64, 1024} {
			got, cut := capText(s, n)
			switch {
			case len(s) <= n && (got != s || cut):
				t.Errorf("capText(%q, %d) = %q, %v; want it whole", s, n, got, cut)
			case len(s) > n && (!cut || len(got) > n || !utf8.ValidString(got)):
				t.Errorf("capText(%q, %d) = %q (%d bytes), %v; want at most %d valid bytes, cut",
					s, n, got, len(got), cut, n)
			}
		}
	}
}
