package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// Issue 11, row 9: two reach watch on one store both ran and stored every
// sample twice. The second is refused, naming the first; closing the first
// frees the store.
func TestHostileSecondWriter(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		first, err := OpenExclusive(ctx, dsn, log)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		second, err := OpenExclusive(ctx, dsn, log)
		var iu *InUseError
		if err == nil {
			second.Close()
			t.Fatal("a second writer opened the store")
		}
		if !errors.Is(err, ErrInUse) || !errors.As(err, &iu) || iu.PID != os.Getpid() ||
			!strings.Contains(err.Error(), "(pid "+strconv.Itoa(os.Getpid())+", ") {
			t.Fatalf("got %v (%+v), want an InUseError naming pid %d", err, iu, os.Getpid())
		}
		if strings.HasPrefix(dsn, "postgres") && (!strings.Contains(err.Error(), "--replica") || strings.Contains(err.Error(), "password")) {
			t.Errorf("postgres: %v", err)
		}
		if !strings.HasPrefix(dsn, "postgres") && !strings.Contains(err.Error(), "use PostgreSQL for replicas") {
			t.Errorf("sqlite: %v, want it to say to use PostgreSQL for replicas", err)
		}
		// Readers still open it as before.
		r, err := OpenStore(ctx, dsn)
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
		r.Close()
		first.Close()
		again, err := OpenExclusive(ctx, dsn, log)
		if err != nil {
			t.Fatalf("after the first closed: %v", err)
		}
		again.Close()
		if strings.Contains(logs.String(), "took over") {
			t.Errorf("a clean close left its pid behind:\n%s", logs.String())
		}
	})
}

// A lock file left by a process that ended without releasing it (kill -9)
// holds no lock: it is taken over, with a log line naming the old pid.
func TestHostileStaleLockFile(t *testing.T) {
	path := t.TempDir() + "/reach.db"
	if err := os.WriteFile(path+".lock", []byte("pid 4194999\nsince 2026-01-02T03:04:05Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := OpenExclusive(context.Background(), path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "took over the lock") || !strings.Contains(logs.String(), "pid=4194999") {
		t.Errorf("no log line naming the old pid:\n%s", logs.String())
	}
	b, _ := os.ReadFile(path + ".lock")
	if !strings.HasPrefix(string(b), "pid "+strconv.Itoa(os.Getpid())+"\n") {
		t.Errorf("lock file holds %q, want this pid", b)
	}
	s.Close()
	if b, _ := os.ReadFile(path + ".lock"); len(b) != 0 {
		t.Errorf("after Close the lock file holds %q, want it empty", b)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// Issue 11, row 10: with every batch failing, watch went on saying all was
// well. Here the samples table goes away under a running monitor (a real
// failure of every write): after the grace the store is unhealthy with the
// reason, reach_store_healthy is 0 and the log said it once; recreated, the
// table takes writes again and all turns back.
func TestHostileStoreWritesFail(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := openTestStore(t, filepath.Join(t.TempDir(), "reach.db"))
	reg := prometheus.NewRegistry()
	logs := &testnet.Buffer{}
	const grace = 300 * time.Millisecond
	e := Endpoint{Name: "db", Target: endpoint.Endpoint{Host: "127.0.0.1", Port: 1}, Interval: 20 * time.Millisecond,
		Timeout: 10 * time.Millisecond, Expect: ExpectOpen}
	m, err := New(ctx, &Config{Endpoints: []Endpoint{e}}, Options{Store: store, Metrics: NewMetrics(reg),
		FlushInterval: 20 * time.Millisecond, StoreGrace: grace, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Probe: func(context.Context, endpoint.Endpoint, probe.Options) probe.Result {
			return probe.Result{Class: probe.Open, RTT: time.Millisecond}
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	written := func() float64 {
		fams, _ := reg.Gather()
		for _, f := range fams {
			if f.GetName() == "reach_store_written_samples_total" {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	if !testnet.Poll(10*time.Second, func() bool { return written() > 0 }) {
		t.Fatalf("no sample written:\n%s", logs)
	}
	if h := m.StoreHealth(); !h.Healthy || gauge(t, reg, "reach_store_healthy") != 1 {
		t.Fatalf("healthy store: %+v, gauge %v", h, gauge(t, reg, "reach_store_healthy"))
	}

	if _, err := store.db.Exec(`DROP TABLE samples`); err != nil {
		t.Fatal(err)
	}
	broke := time.Now()
	if !testnet.Poll(10*time.Second, func() bool { return !m.StoreHealth().Healthy }) {
		t.Fatalf("still healthy 10s after every write began to fail: %+v\n%s", m.StoreHealth(), logs)
	}
	h := m.StoreHealth()
	if took := time.Since(broke); took < grace || took > grace+5*time.Second {
		t.Errorf("unhealthy %v after the writes began to fail, want after the %v grace", took, grace)
	}
	if !strings.Contains(h.String(), "no such table: samples") || h.Failed < 2 {
		t.Errorf("reason %q (%d failed), want the store's error", h, h.Failed)
	}
	// The gauge follows at the next batch.
	if !testnet.Poll(5*time.Second, func() bool { return gauge(t, reg, "reach_store_healthy") == 0 }) {
		t.Error("reach_store_healthy stayed 1")
	}
	time.Sleep(200 * time.Millisecond) // more failing batches, still under a minute
	if n, f := strings.Count(logs.String(), "store write failed"), m.StoreHealth().Failed; n != 1 || f < 10 ||
		strings.Contains(logs.String(), "still fail") {
		t.Errorf("%d batches failed, %d log lines at first failure; want one line a minute:\n%s", f, n, logs)
	}

	if _, err := store.db.Exec(migrations[0][0]); err != nil {
		t.Fatal(err)
	}
	if !testnet.Poll(10*time.Second, func() bool {
		return m.StoreHealth().Healthy && gauge(t, reg, "reach_store_healthy") == 1
	}) {
		t.Fatalf("writes recovered but the store stays unhealthy: %+v\n%s", m.StoreHealth(), logs)
	}
	if !strings.Contains(logs.String(), "store writes succeed again") {
		t.Errorf("no log line says the writes recovered:\n%s", logs)
	}
}

// While writes fail the log speaks once a minute, not once a batch, and the
// gauge turns 0 exactly at the grace and back to 1 with the next success.
func TestStoreFailureLogOncePerMinute(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	m, err := New(context.Background(), &Config{}, Options{Metrics: NewMetrics(reg),
		StoreGrace: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("monitor: store: disk I/O error")
	t0 := time.Now()
	var last time.Time
	for i := range 180 { // a batch a second for three minutes
		m.wrote(t0.Add(time.Duration(i)*time.Second), boom, 10, &last)
		want := 1.0
		if i >= 30 {
			want = 0
		}
		if g := gauge(t, reg, "reach_store_healthy"); g != want {
			t.Fatalf("after %ds of failures the gauge is %v, want %v", i, g, want)
		}
	}
	if first, later := strings.Count(logs.String(), "store write failed"), strings.Count(logs.String(), "still fail"); first != 1 || later != 2 {
		t.Errorf("180 failed batches in 3 minutes: %d + %d log lines, want 1 + 2:\n%s", first, later, logs.String())
	}
	// A batch of statuses alone goes in, but says nothing of the samples.
	m.wrote(t0.Add(179*time.Second+time.Millisecond), nil, 0, &last)
	if g := gauge(t, reg, "reach_store_healthy"); g != 0 || m.StoreHealth().Since.IsZero() {
		t.Errorf("a batch without samples went in and the gauge is %v, want still 0", g)
	}
	m.wrote(t0.Add(180*time.Second), nil, 10, &last)
	if g := gauge(t, reg, "reach_store_healthy"); g != 1 || !strings.Contains(logs.String(), "failed_batches=180") {
		t.Errorf("after a success: gauge %v, log:\n%s", g, logs.String())
	}
}

// The PostgreSQL lock lives with its session: when the server ends it (a
// restart, a cut connection), the next write takes the lock again; if
// another process took it meanwhile, the write fails naming it, rather
// than both storing the same samples.
func TestHostilePostgresLockLost(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		if !strings.HasPrefix(dsn, "postgres") {
			t.Skip("PostgreSQL only")
		}
		ctx := context.Background()
		first, err := OpenExclusive(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		cut := func() {
			t.Helper()
			var n int
			// Waits (up to 10 s) for the session to end: a loaded server
			// could still hold its lock when the write took it again.
			err := first.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000))
				FROM pg_stat_activity WHERE application_name = $1`, fmt.Sprintf("reach pid %d on %s", os.Getpid(), hostname())).Scan(&n)
			if err != nil || n != 1 {
				t.Fatalf("ending the lock's session: %d ended, %v", n, err)
			}
		}
		sample := Batch{Samples: []Sample{{Endpoint: "db", Source: LocalSource, Time: time.Now(), OK: true, Class: probe.Open}}}
		cut()
		if err := first.Write(ctx, sample); err != nil {
			t.Fatalf("write after the lock's session ended, none else holding it: %v", err)
		}
		cut()
		second, err := OpenExclusive(ctx, dsn, nil)
		if err != nil {
			t.Fatalf("second writer after the first lost its lock: %v", err)
		}
		defer second.Close()
		if err := first.Write(ctx, sample); !errors.Is(err, ErrInUse) {
			t.Fatalf("the first wrote on while the second held the lock: %v", err)
		}
		if err := first.Write(ctx, sample); !errors.Is(err, ErrInUse) {
			t.Fatalf("and again: %v", err)
		}
	})
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
