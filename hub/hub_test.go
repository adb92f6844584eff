package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

const testToken = "s3cret-token-0123456789"

type memSink struct {
	mu  sync.Mutex
	got []agent.Result
}

func (s *memSink) Ingest(_ context.Context, rs []agent.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, rs...)
	return nil
}

func (s *memSink) results() []agent.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agent.Result(nil), s.got...)
}

func newTestHub(t *testing.T, cfg Config) (*Hub, *httptest.Server) {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	return h, srv
}

// runAgent runs a real agent until the test ends.
func runAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	a, err := agent.New(cfg)
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

// call makes one protocol call as an agent would, with the test token, and
// decodes a 200 answer into out. status is 0 when no answer came back.
func call(hc *http.Client, base, method, path string, query url.Values, in, out any) (status int, err error) {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return 0, err
		}
	}
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, &body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, errors.New(resp.Status)
	}
	if out != nil {
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, err
}

// A real agent reports to the hub: the matrix, the sink and the history
// get its results under its name, with their errno.
func TestAgentReportsToHub(t *testing.T) {
	open, closed := testnet.Serve(t, testnet.HangUp), testnet.ClosedPort(t)
	h, srv := newTestHub(t, Config{
		Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}, {From: "a", To: closed.String()}},
	})
	sink := &memSink{}
	h.Sink = sink
	a := runAgent(t, agent.Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond, ReportEvery: 50 * time.Millisecond})

	want := map[string]probe.Class{open.String(): probe.Open, closed.String(): probe.Refused}
	testnet.Eventually(t, 10*time.Second, "both targets in the matrix", func() bool {
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
	body := get(t, a.Handler(), agent.PathMetrics, testToken, http.StatusOK)
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

// The hub's protocol needs the token; an agent with a wrong one stops.
func TestHubRefusesUnauthenticated(t *testing.T) {
	h, srv := newTestHub(t, Config{Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}}})
	for _, path := range []string{agent.PathTargets + "?agent=a", agent.PathAgents} {
		for _, tok := range []string{"", "wrong", testToken + "x", testToken[:len(testToken)-1]} {
			t.Run(path+"/"+tok, func(t *testing.T) {
				get(t, h.Handler(), path, tok, http.StatusUnauthorized)
			})
		}
	}
	// POST without a token, over the network.
	resp, err := http.Post(srv.URL+agent.PathResults, "application/json", strings.NewReader(`{"agent":"a","results":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST results without token: %d, want 401", resp.StatusCode)
	}

	// An agent with the wrong token stops at once with a clear error.
	bad, err := agent.New(agent.Config{Name: "a", Hub: srv.URL, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bad.Run(ctx); !errors.Is(err, agent.ErrUnauthorized) {
		t.Errorf("Run with a wrong token: %v, want ErrUnauthorized", err)
	}
	if _, err := New(Config{}); !errors.Is(err, agent.ErrNoToken) {
		t.Errorf("New without token: %v, want ErrNoToken", err)
	}
}

func TestHubRejectsTargetsNotInConfig(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	h, srv := newTestHub(t, Config{
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}, {Name: "b", Addr: netip.MustParseAddr("127.0.0.2")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	var reply agent.IngestReply
	_, err := call(nil, srv.URL, http.MethodPost, agent.PathResults, nil, agent.Batch{Agent: "a", Results: []agent.Result{
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
	_, err = call(nil, srv.URL, http.MethodPost, agent.PathResults, nil,
		agent.Batch{Agent: "b", Results: []agent.Result{{Target: open.String(), Class: probe.Refused}}}, &reply)
	if err != nil || reply.Rejected != 1 {
		t.Errorf("b reporting a's target: %+v %v, want rejected", reply, err)
	}
	if got := h.History("a", open.String()); len(got) != 1 || got[0].Source != "a" || got[0].Addr != open {
		t.Errorf("history %+v, want the one accepted result from a", got)
	}
	var pl agent.ProbeList
	status, _ := call(nil, srv.URL, http.MethodGet, agent.PathTargets, url.Values{"agent": {"nobody"}}, nil, &pl)
	if status != http.StatusNotFound {
		t.Errorf("probe list for an unknown agent: status %d, want 404", status)
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

// metric reads one unlabelled counter from an agent's /metrics; -1 when it
// is not there.
func metric(t *testing.T, a *agent.Agent, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(get(t, a.Handler(), agent.PathMetrics, testToken, http.StatusOK), "\n") {
		if v, ok := strings.CutPrefix(line, name+"{source=\"a\"} "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// The hub learns how many results an agent dropped during an outage, and
// gets the newest ones once it is back.
func TestAgentBuffersThroughHubOutage(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	h, err := New(Config{
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
	a := runAgent(t, agent.Config{Name: "a", Hub: srv.URL, Token: testToken, MinInterval: time.Millisecond, ReportEvery: 30 * time.Millisecond,
		Buffer: 5, QueryRate: 1000})
	testnet.Eventually(t, 10*time.Second, "first results", func() bool { return len(sink.results()) > 0 })

	f.down.Store(true)
	outage := time.Now()
	testnet.Eventually(t, 10*time.Second, "results dropped during the outage", func() bool {
		return metric(t, a, "reach_agent_results_dropped_total") >= 3
	})
	f.down.Store(false)
	testnet.Eventually(t, 10*time.Second, "results after the outage", func() bool {
		rs := sink.results()
		return len(rs) > 0 && rs[len(rs)-1].Time.After(outage)
	})
	if ags := h.Agents(); ags[0].Dropped < 3 {
		t.Errorf("hub saw dropped=%d, want the agent's count (>= 3)", ags[0].Dropped)
	}
}

// FuzzHubIngest posts arbitrary bodies: the hub answers 200, or 400, 413 or
// 429 storing nothing; counts every result of a 200 as accepted or refused;
// and stores only results within bounds, for the agent's own probe list.
func FuzzHubIngest(f *testing.F) {
	f.Add([]byte(`{"agent":"a","results":[{"target":"127.0.0.1:1","class":"open","rtt":"1ms","time":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"agent":"a","results":[{"target":"x","class":"refused"}],"dropped":3}`))
	f.Add([]byte(`{"agent":"b"}`))
	f.Add([]byte(`{"agent":"a","run":1764900000000000000,"seq":18446744073709551615,"results":[{"target":"127.0.0.1:1","class":"open","rtt":"1ms"}]}`))
	f.Add([]byte(`{"results":[{"rtt":5}]}`))
	f.Add([]byte(`{"agent":"a","results":[{"target":"127.0.0.1:1","class":"<script>","rtt":"-5s","time":"0001-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"agent":"a","results":[{"target":"127.0.0.1:1","class":"timeout","rtt":"3.5s","errno":110,"error":"` +
		strings.Repeat("x", 2000) + `"}]}`))
	h, err := New(Config{Token: testToken, Interval: 10 * time.Second, Timeout: 3 * time.Second,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}},
		Pairs: []PairConfig{{From: "a", To: "127.0.0.1:1"}}})
	if err != nil {
		f.Fatal(err)
	}
	sink := &memSink{}
	h.Sink = sink
	handler := h.Handler()
	window := Window(h.lists["a"])
	f.Fuzz(func(t *testing.T, body []byte) {
		start := time.Now()
		sink.mu.Lock()
		sink.got = nil
		sink.mu.Unlock()
		req := httptest.NewRequest(http.MethodPost, agent.PathResults, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
			if got := sink.results(); len(got) > 0 {
				t.Fatalf("status %d, yet %d results stored", rec.Code, len(got))
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK {
			var b agent.Batch
			var reply agent.IngestReply
			_ = json.Unmarshal(body, &b)
			if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
				t.Fatalf("reply %s: %v", rec.Body, err)
			}
			refused := 0
			for _, n := range reply.Refused {
				refused += n
			}
			if reply.Accepted+reply.Rejected != len(b.Results) || refused != reply.Rejected {
				t.Fatalf("%d results, reply %+v", len(b.Results), reply)
			}
		}
		for _, r := range sink.results() {
			if r.Source != "a" || r.Target != "127.0.0.1:1" || r.Addr != netip.MustParseAddrPort("127.0.0.1:1") ||
				!slices.Contains(probe.Classes, r.Class) || r.RTT < 0 ||
				time.Duration(r.RTT) > 3*time.Second+RTTMargin || len(r.Error) > agent.MaxErrorText ||
				r.Time.Before(start.Add(-window)) || r.Time.After(time.Now()) {
				t.Fatalf("stored out of bounds: %+v", r)
			}
		}
		m := h.Matrix()
		if len(m.Targets) != 1 || m.Targets[0] != "127.0.0.1:1" {
			t.Fatalf("matrix targets %v", m.Targets)
		}
	})
}

// An agent's advertised URL is used only on its configured address.
func TestHubAdvertisedAgentURL(t *testing.T) {
	h, srv := newTestHub(t, Config{Hosts: []HostConfig{
		{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")},
		{Name: "b", Addr: netip.MustParseAddr("127.0.0.2"), Agent: "http://127.0.0.2:9"},
	}})
	ask := func(name, adv string) {
		t.Helper()
		var pl agent.ProbeList
		q := url.Values{"agent": {name}, "advertise": {adv}}
		if _, err := call(nil, srv.URL, http.MethodGet, agent.PathTargets, q, nil, &pl); err != nil {
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

// reach check --hub finds the target host's agent through the hub's list:
// an agent there answers; a host without one is the hub's "no agent", typed
// so the doctor can say what to do.
func TestDiscoveryThroughHub(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	a, err := agent.New(agent.Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	agentSrv := httptest.NewServer(a.Handler())
	defer agentSrv.Close()
	_, srv := newTestHub(t, Config{Hosts: []HostConfig{
		{Name: "a", Addr: netip.MustParseAddr("127.0.0.1"), Agent: agentSrv.URL},
		{Name: "b", Addr: netip.MustParseAddr("127.0.0.2")},
	}})
	disc, err := agent.NewDiscovery(srv.URL, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := disc.Evidence(context.Background(), open)
	if err != nil || !strings.HasPrefix(ev.Host, "agent a (") {
		t.Errorf("evidence for %v: from %q, %v; want a's agent", open, ev.Host, err)
	}
	_, err = disc.Evidence(context.Background(), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), open.Port()))
	var ae *doctor.AgentError
	if !errors.As(err, &ae) || ae.Failure != doctor.AgentNone || !ae.Hub || ae.URL != srv.URL || !errors.Is(err, agent.ErrNoAgent) {
		t.Errorf("host without an agent: %v (%+v), want the hub's AgentNone wrapping ErrNoAgent", err, ae)
	}
}
