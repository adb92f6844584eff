package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testdb"
	"github.com/reach-tools/reach/internal/testnet"
)

// BenchmarkWatch10k is issue #6's figure: 10,000 endpoints at a 10 s
// interval on loopback (half open on 20 listeners of our own, half refused
// on 20 ports we listened on and closed), history in SQLite. After one
// interval of warm-up it measures REACH_BENCH_DURATION (default 60s, at most
// 10m) and reports the process's CPU (probes, store, and the listeners'
// accepts), RSS, probe-start lateness p99 and the rows SQLite wrote.
// Run it with bench/watch-10k.
func BenchmarkWatch10k(b *testing.B) {
	const n, interval, ports = 10_000, 10 * time.Second, 20
	measure := 60 * time.Second
	if s := os.Getenv("REACH_BENCH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 10*time.Minute {
			b.Fatalf("REACH_BENCH_DURATION=%q: want a duration up to 10m", s)
		}
		measure = d
	}
	var open, refused []uint16
	for range ports {
		open = append(open, testnet.Serve(b, testnet.HangUp).Port())
		refused = append(refused, testnet.ClosedPort(b).Port())
	}
	cfg := &Config{Alerts: Alerts{Rise: DefaultRise, Fall: DefaultFall}}
	for i := range n {
		port := open[i%ports]
		if i%2 == 1 {
			port = refused[i%ports]
		}
		cfg.Endpoints = append(cfg.Endpoints, Endpoint{Name: "ep-" + strconv.Itoa(i), Target: endpoint.Endpoint{Host: "127.0.0.1", Port: port},
			Interval: interval, Timeout: 2 * time.Second, Expect: ExpectOpen})
	}

	for range b.N {
		store, err := OpenStore(b.Context(), filepath.Join(b.TempDir(), "reach.db"))
		if err != nil {
			b.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		metrics := NewMetrics(reg)
		m, err := New(b.Context(), cfg, Options{Store: store, Metrics: metrics})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()

		time.Sleep(interval) // every endpoint has started its cycle
		late0, written0 := lateness(b, reg), counter(b, reg, "reach_store_written_samples_total")
		cpu0, t0 := cpuTime(), time.Now()
		time.Sleep(measure)
		cpu, wall := cpuTime()-cpu0, time.Since(t0)
		late, written := lateness(b, reg).minus(late0), counter(b, reg, "reach_store_written_samples_total")-written0
		rss, peak := procStatus("VmRSS"), procStatus("VmHWM")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		dropped := counter(b, reg, "reach_store_dropped_samples_total")
		store.Close()

		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu%core")
		b.ReportMetric(float64(rss)/1024, "rss-MB")
		b.ReportMetric(float64(peak)/1024, "peak-rss-MB")
		b.ReportMetric(late.quantile(0.5)*1000, "lateness-p50-ms")
		b.ReportMetric(late.quantile(0.99)*1000, "lateness-p99-ms")
		b.ReportMetric(written/wall.Seconds(), "sqlite-rows/s")
		b.ReportMetric(late.count/wall.Seconds(), "probes/s")
		if dropped > 0 {
			b.Errorf("%v samples dropped", dropped)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a kB field of /proc/self/status.
func procStatus(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

func counter(b *testing.B, reg *prometheus.Registry, name string) float64 {
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// hist is a cumulative histogram snapshot.
type hist struct {
	bounds []float64
	counts []float64
	count  float64
}

func lateness(b *testing.B, reg *prometheus.Registry) hist {
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "reach_probe_start_lateness_seconds" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		var out hist
		for _, bk := range h.GetBucket() {
			out.bounds = append(out.bounds, bk.GetUpperBound())
			out.counts = append(out.counts, float64(bk.GetCumulativeCount()))
		}
		out.count = float64(h.GetSampleCount())
		return out
	}
	b.Fatal("no lateness histogram")
	return hist{}
}

func (h hist) minus(o hist) hist {
	out := hist{bounds: h.bounds, count: h.count - o.count}
	for i := range h.counts {
		out.counts = append(out.counts, h.counts[i]-o.counts[i])
	}
	return out
}

// quantile interpolates linearly within the bucket holding q, as
// Prometheus' histogram_quantile does.
func (h hist) quantile(q float64) float64 {
	rank := q * h.count
	lo, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			return lo + (h.bounds[i]-lo)*(rank-below)/max(c-below, 1)
		}
		lo, below = h.bounds[i], c
	}
	return lo // beyond the last finite bucket: report its bound
}

// BenchmarkStoreWrite is the store's capacity: batches as the monitor writes
// them at 10,000 endpoints every 10 s (1,000 samples and 1,000 statuses), in
// SQLite, and in PostgreSQL when REACH_TEST_POSTGRES is set.
func BenchmarkStoreWrite(b *testing.B) {
	dsns := map[string]string{"sqlite": filepath.Join(b.TempDir(), "reach.db")}
	if os.Getenv("REACH_TEST_POSTGRES") != "" {
		dsns["postgres"] = testdb.PostgresSchema(b) // its own schema, dropped after
	}
	for name, dsn := range dsns {
		b.Run(name, func(b *testing.B) {
			s, err := OpenStore(b.Context(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const n = 1000
			now := time.Now()
			var batch Batch
			for i := range n {
				sm := Sample{Endpoint: "bench-" + strconv.Itoa(i), Source: "bench", Time: now, OK: i%2 == 0, Class: "open", RTT: time.Millisecond}
				batch.Samples = append(batch.Samples, sm)
				batch.Statuses = append(batch.Statuses, Status{Endpoint: sm.Endpoint, Source: sm.Source, State: StateUp, Since: now, Last: sm})
			}
			b.ResetTimer()
			for range b.N {
				if err := s.Write(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
