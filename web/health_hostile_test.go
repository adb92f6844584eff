package web

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http/httptest"
	"os"
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

// corruptSamples writes a store with some samples at path, then overwrites
// the samples table's root page with junk, as a failing disk would.
func corruptSamples(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	s, err := monitor.OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var b monitor.Batch
	for i := range 50 {
		b.Samples = append(b.Samples, monitor.Sample{Endpoint: "db", Source: monitor.LocalSource,
			Time: time.Now().Add(time.Duration(-i) * time.Second), OK: true, Class: probe.Open})
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var root, size int64
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'samples'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", int(size))), (root-1)*size); err != nil {
		t.Fatal(err)
	}
}

// Issue 11, row 10: with the samples table's root page corrupted, watch
// kept running with every batch failing, and /healthz said ok. It now
// answers 503 with the reason once the grace is over (the store's own
// error only to those the dashboard lets in), reach_store_healthy is 0,
// and the log said it once.
func TestHostileCorruptStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reach.db")
	corruptSamples(t, path)
	store, err := monitor.OpenStore(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	logs := &testnet.Buffer{}
	const grace = 300 * time.Millisecond
	ep := monitor.Endpoint{Name: "db", Target: endpoint.Endpoint{Host: "127.0.0.1", Port: 1},
		Interval: 20 * time.Millisecond, Timeout: 10 * time.Millisecond, Expect: monitor.ExpectOpen}
	m, err := monitor.New(t.Context(), &monitor.Config{Endpoints: []monitor.Endpoint{ep}}, monitor.Options{
		Store: store, Metrics: monitor.NewMetrics(reg), FlushInterval: 20 * time.Millisecond, StoreGrace: grace,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Probe: func(context.Context, endpoint.Endpoint, probe.Options) probe.Result {
			return probe.Result{Class: probe.Open, RTT: time.Millisecond}
		}})
	if err != nil {
		t.Fatal(err)
	}
	const token = "health-token-0123456789"
	srv := httptest.NewServer(New(Options{Monitor: m, Gatherer: reg, Token: token}))
	t.Cleanup(srv.Close)
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("before Run: %d %q", code, body)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	start := time.Now()
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var code int
	var body string
	if !testnet.Poll(10*time.Second, func() bool { code, body = get(t, srv.URL+"/healthz"); return code == 503 }) {
		t.Fatalf("/healthz: %d %q 10s after writes began to fail\n%s", code, body, logs)
	}
	if took := time.Since(start); took < grace {
		t.Errorf("503 after %v, before the %v grace", took, grace)
	}
	if !strings.HasPrefix(body, "unhealthy: ") || !strings.Contains(body, "store writes failed in a row") ||
		strings.Contains(body, "malformed") {
		t.Errorf("anonymous /healthz: %q, want the reason without the store's error", body)
	}
	code, body = get(t, srv.URL+"/healthz", "Authorization", "Bearer "+token)
	if code != 503 || !strings.Contains(body, "database disk image is malformed") {
		t.Errorf("authorized /healthz: %d %q, want 503 with the store's error", code, body)
	}
	if !testnet.Poll(5*time.Second, func() bool {
		_, metrics := get(t, srv.URL+"/metrics", "Authorization", "Bearer "+token)
		return strings.Contains(metrics, "\nreach_store_healthy 0\n")
	}) {
		t.Error("reach_store_healthy is not 0")
	}
	if n, h := strings.Count(logs.String(), "store write failed"), m.StoreHealth(); n != 1 || h.Failed < 5 {
		t.Errorf("%d batches failed, logged %d times; want once a minute:\n%s", h.Failed, n, logs)
	}
}
