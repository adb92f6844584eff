package agent

import (
	"context"
	"encoding/json"
	"github.com/reach-tools/reach/internal/testnet"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// handlerTransport answers a client's requests with a handler, in memory:
// no socket, so the agent runs in a synctest bubble on virtual time.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// memHub serves one probe list and keeps every result it is sent, in memory.
type memHubResults struct {
	mu sync.Mutex
	rs []Result
}

func (m *memHubResults) all() []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rs)
}

func memHub(pl ProbeList) (*http.Client, *memHubResults) {
	results := &memHubResults{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathTargets, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, pl) })
	mux.HandleFunc("POST "+PathResults, func(w http.ResponseWriter, r *http.Request) {
		var b Batch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		results.mu.Lock()
		results.rs = append(results.rs, b.Results...)
		results.mu.Unlock()
		writeJSON(w, IngestReply{Accepted: len(b.Results)})
	})
	return &http.Client{Transport: handlerTransport{guard(func() string { return testToken }, nil, mux)}}, results
}

// A hub that asks for a 1ms interval and a 1ns timeout gets probes at the
// floor: about one a second over 10 s, not 10,000. The agent warns once,
// though the hub sends the same list every refresh, and its metrics say
// what it probes at and that it raised the hub's values. (Before, a hub's
// 1ms was taken as it came: 270,000 samples in 6 s from one agent.)
func TestHostileHubInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		target := netip.MustParseAddrPort("198.18.0.9:80") // never dialled: Dial is faked
		pl := ProbeList{Agent: "a", Interval: Duration(time.Millisecond), Timeout: Duration(time.Nanosecond),
			Targets: []Target{{ID: target.String(), Addr: target}}}
		hc, results := memHub(pl)
		var dials atomic.Int64
		var log testnet.Buffer
		// No network watch: its netlink socket would block the bubble's clock.
		a, err := New(Config{Name: "a", Hub: "http://hub.invalid", Token: testToken, HTTPClient: hc,
			RefreshEvery: time.Second, ReportEvery: time.Second, NoNetWatch: true,
			Logger: slog.New(slog.NewTextHandler(&log, nil)),
			Dial: func(context.Context, string, string) (net.Conn, error) {
				dials.Add(1)
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		const window = 10 * time.Second
		time.Sleep(window)
		synctest.Wait()
		n := dials.Load()
		body := get(t, a.Handler(), PathMetrics, testToken, http.StatusOK)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n < 9 || n > 11 {
			t.Errorf("%d probes in %v with the hub asking for 1ms: want about one a second (the floor %v)", n, window, MinInterval)
		}
		if n := len(results.all()); n < 9 {
			t.Errorf("the hub got %d results, want the probes'", n)
		}
		if c := strings.Count(log.String(), "the hub asked for a shorter interval"); c != 1 {
			t.Errorf("warned %d times over %d refreshes, want once:\n%s", c, int(window/time.Second), log.String())
		}
		for _, want := range []string{
			`reach_agent_probe_interval_seconds{source="a"} 1`,
			`reach_agent_probe_timeout_seconds{source="a"} 0.001`,
			`reach_agent_hub_settings_raised{source="a"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		t.Logf("%d probes in %v (hub asked for 1ms)", n, window)
	})
}

// The floor applies to what the hub sends, warning anew only when the
// hub's values change; values at or above it pass untouched.
func TestFloorWarnsOncePerChange(t *testing.T) {
	var log testnet.Buffer
	a, err := New(Config{Name: "a", Hub: "http://hub.invalid", Token: testToken,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		interval, timeout time.Duration
		want              [2]time.Duration
		warns             int // in all, so far
	}{
		{time.Millisecond, time.Millisecond, [2]time.Duration{time.Second, time.Millisecond}, 1},
		{time.Millisecond, time.Millisecond, [2]time.Duration{time.Second, time.Millisecond}, 1},
		{2 * time.Millisecond, time.Millisecond, [2]time.Duration{time.Second, time.Millisecond}, 2},
		{5 * time.Second, time.Nanosecond, [2]time.Duration{5 * time.Second, time.Millisecond}, 3},
		{5 * time.Second, 2 * time.Second, [2]time.Duration{5 * time.Second, 2 * time.Second}, 3},
		{time.Millisecond, time.Millisecond, [2]time.Duration{time.Second, time.Millisecond}, 4},
	} {
		pl := a.floor(ProbeList{Interval: Duration(tc.interval), Timeout: Duration(tc.timeout)})
		if got := [2]time.Duration{time.Duration(pl.Interval), time.Duration(pl.Timeout)}; got != tc.want {
			t.Errorf("hub %v/%v: agent uses %v, want %v", tc.interval, tc.timeout, got, tc.want)
		}
		if c := strings.Count(log.String(), "level=WARN"); c != tc.warns {
			t.Errorf("after hub %v/%v: %d warnings, want %d", tc.interval, tc.timeout, c, tc.warns)
		}
	}
}
