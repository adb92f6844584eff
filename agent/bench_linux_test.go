package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/probe"
)

// BenchmarkHubIngest measures the hub's cost of the load: 100 agents
// × 100 targets every 10 s, reported every 2 s (the default), so 50 batches
// of 20 results a second. Each op posts one batch over loopback HTTP. The
// "core%" metric is the process CPU time per batch (hub and client side
// together, so an upper bound on the hub's) times 50 batches per second.
//
//	go test -run xxx -bench HubIngest -benchtime 5000x ./agent/
func BenchmarkHubIngest(b *testing.B) {
	const agents, targets, perBatch = 100, 100, 20
	cfg := HubConfig{Token: testToken, Interval: 10 * time.Second}
	var names []string
	for i := range agents {
		name := fmt.Sprintf("host-%d", i)
		names = append(names, name)
		cfg.Hosts = append(cfg.Hosts, HostConfig{Name: name, Addr: netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)})})
	}
	// 100 agents probing 100 targets each: every host probes 99 peers, plus
	// one explicit pair.
	cfg.Groups = []GroupConfig{{Name: "all", Hosts: names, Ports: []uint16{5432}}}
	for _, n := range names {
		cfg.Pairs = append(cfg.Pairs, PairConfig{From: n, To: "198.19.0.1:443"})
	}
	h, err := NewHub(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h.Sink = discardSink{}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()

	// Pre-encode one round of batches per agent (targets/perBatch each).
	var bodies [][]byte
	now := time.Now()
	for _, n := range names {
		pl := h.lists[n]
		if len(pl.Targets) != targets {
			b.Fatalf("%s has %d targets, want %d", n, len(pl.Targets), targets)
		}
		for start := 0; start < targets; start += perBatch {
			batch := Batch{Agent: n}
			for _, t := range pl.Targets[start : start+perBatch] {
				batch.Results = append(batch.Results, Result{Target: t.ID, Addr: t.Addr, Class: probe.Open, RTT: Duration(180 * time.Microsecond), Time: now})
			}
			body, _ := json.Marshal(batch)
			bodies = append(bodies, body)
		}
	}
	client := srv.Client()
	post := func(body []byte) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+PathResults, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	post(bodies[0]) // warm the connection
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		post(bodies[i%len(bodies)])
	}
	b.StopTimer()
	cpuPer := (cpuTime() - cpu0) / time.Duration(b.N)
	const batchesPerSecond = agents * (10 / 2) / 10 // each agent: 5 batches per 10 s
	b.ReportMetric(float64(cpuPer.Nanoseconds()), "cpu-ns/batch")
	b.ReportMetric(100*cpuPer.Seconds()*batchesPerSecond, "core%")
}

type discardSink struct{}

func (discardSink) Ingest(context.Context, []Result) error { return nil }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
