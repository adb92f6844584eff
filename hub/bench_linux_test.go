package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// BenchmarkHubIngest measures the hub's cost of the load: 100 agents
// × 100 targets every 10 s, reported every 2 s (the default), so 50 batches
// of 20 results a second. Each op posts one batch over loopback HTTP. The
// "core%" metric is the process CPU time per batch (hub and client side
// together, so an upper bound on the hub's) times 50 batches per second.
//
//	go test -run xxx -bench HubIngest -benchtime 5000x ./hub/
//
// benchFleet is the load: 100 agents, each probing 99 peers on one
// port plus one explicit pair (100 targets), reporting every 2 s (the
// default): 500 batches of 20 results per 10 s interval.
const benchAgents, benchTargets, benchPerBatch = 100, 100, 20

// newBenchHub serves a hub for the bench fleet and returns it with one
// interval's worth of pre-encoded batches.
func newBenchHub(b *testing.B, sink Sink) (*httptest.Server, [][]byte) {
	b.Helper()
	cfg := Config{Token: testToken, Interval: 10 * time.Second}
	var names []string
	for i := range benchAgents {
		name := fmt.Sprintf("host-%d", i)
		names = append(names, name)
		cfg.Hosts = append(cfg.Hosts, HostConfig{Name: name, Addr: netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)})})
		cfg.Pairs = append(cfg.Pairs, PairConfig{From: name, To: "198.19.0.1:443"})
	}
	cfg.Groups = []GroupConfig{{Name: "all", Hosts: names, Ports: []uint16{5432}}}
	h, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h.Sink = sink
	srv := httptest.NewServer(h.Handler())
	b.Cleanup(srv.Close)
	var bodies [][]byte
	// Results need a time within the agent's window: the hub refuses a
	// zero one as too old (so every result was refused, and stored 0).
	now := time.Now()
	for _, n := range names {
		pl := h.lists[n]
		if len(pl.Targets) != benchTargets {
			b.Fatalf("%s has %d targets, want %d", n, len(pl.Targets), benchTargets)
		}
		for start := 0; start < benchTargets; start += benchPerBatch {
			batch := agent.Batch{Agent: n}
			for _, t := range pl.Targets[start : start+benchPerBatch] {
				batch.Results = append(batch.Results, agent.Result{Target: t.ID, Addr: t.Addr, Class: probe.Open, RTT: agent.Duration(180 * time.Microsecond), Time: now})
			}
			bodies = append(bodies, mustJSON(b, batch))
		}
	}
	return srv, bodies
}

func mustJSON(b *testing.B, v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func postBatch(b *testing.B, srv *httptest.Server, body []byte) {
	req, _ := http.NewRequest(http.MethodPost, srv.URL+agent.PathResults, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkHubIngest measures the hub alone: each op posts one batch over
// loopback HTTP. "core%" is the process CPU time per batch (hub and client
// side together, so an upper bound on the hub's) times the fleet's 50
// batches per second.
//
//	go test -run '^$' -bench 'HubIngest$' -benchtime 20000x ./hub/
func BenchmarkHubIngest(b *testing.B) {
	srv, bodies := newBenchHub(b, discardSink{})
	postBatch(b, srv, bodies[0]) // warm the connection
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		postBatch(b, srv, bodies[i%len(bodies)])
	}
	b.StopTimer()
	cpuPer := (cpuTime() - cpu0) / time.Duration(b.N)
	b.ReportMetric(float64(cpuPer.Nanoseconds()), "cpu-ns/batch")
	b.ReportMetric(100*cpuPer.Seconds()*benchAgents*5/10, "core%")
}

// BenchmarkHubFleetStored runs the fleet's load in real time into reach
// watch's monitor with its SQLite store, as the hub runs in production:
// each op is one 10 s interval (500 batches, 10,000 results, spread evenly).
// "core%" is the process CPU over the op's wall time.
//
//	go test -run '^$' -bench 'HubFleetStored' -benchtime 3x ./hub/
func BenchmarkHubFleetStored(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := monitor.OpenStore(ctx, filepath.Join(b.TempDir(), "reach.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	m, err := monitor.New(ctx, &monitor.Config{Alerts: monitor.Alerts{Rise: 1, Fall: 1}}, monitor.Options{Store: store, Metrics: monitor.NewMetrics(reg)})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	srv, bodies := newBenchHub(b, MonitorSink{Monitor: m})
	step := 10 * time.Second / time.Duration(len(bodies))
	b.ResetTimer()
	var cpu, wall time.Duration
	for range b.N {
		cpu0, start := cpuTime(), time.Now()
		for i, body := range bodies {
			time.Sleep(time.Until(start.Add(time.Duration(i) * step)))
			postBatch(b, srv, body)
		}
		time.Sleep(time.Until(start.Add(10 * time.Second)))
		cpu += cpuTime() - cpu0
		wall += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "core%")
	cancel()
	<-done
	// Every result must have reached SQLite, or the CPU figure flatters.
	written, dropped := counter(b, reg, "reach_store_written_samples_total"), counter(b, reg, "reach_store_dropped_samples_total")
	b.ReportMetric(written/wall.Seconds(), "stored/s")
	if want := float64(b.N * benchAgents * benchTargets); written < want || dropped > 0 {
		b.Errorf("stored %.0f samples (dropped %.0f), want %.0f", written, dropped, want)
	}
}

// counter sums a counter's series in reg.
func counter(b *testing.B, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

type discardSink struct{}

func (discardSink) Ingest(context.Context, []agent.Result) error { return nil }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
