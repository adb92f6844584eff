package monitor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testdb"
	"github.com/reach-tools/reach/probe"
)

// forEachStore runs one test suite against SQLite (a file in t.TempDir) and
// PostgreSQL (REACH_TEST_POSTGRES; scripts/test starts one), each test on a
// fresh database whose DSN it gets; open it again to act as a restarted process.
func forEachStore(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "reach.db")
		test(t, path)
	})
	t.Run("postgres", func(t *testing.T) { test(t, testdb.PostgresSchema(t)) })
}

func containsQuery(s string) bool {
	for _, c := range s {
		if c == '?' {
			return true
		}
	}
	return false
}

func openTestStore(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		open := func() *Store { return openTestStore(t, dsn) }
		ctx := context.Background()
		s := open()
		t0 := time.UnixMilli(time.Now().Add(-30*time.Minute).UnixMilli() / 60000 * 60000)
		var samples []Sample
		for i := range 60 {
			ok := i%4 != 0
			class := probe.Open
			if !ok {
				class = probe.Refused
			}
			samples = append(samples, Sample{Endpoint: "db", Source: LocalSource, Time: t0.Add(time.Duration(i) * 10 * time.Second),
				OK: ok, Class: class, RTT: time.Duration(i+1) * time.Millisecond})
		}
		samples = append(samples, Sample{Endpoint: "db", Source: "agent-1", Time: t0, OK: false, Class: probe.Timeout, RTT: 2 * time.Second})
		st := Status{Endpoint: "db", Source: LocalSource, State: StateDown, Since: t0.Add(5 * time.Minute), Last: samples[59], Fails: 1, Cause: "not-listening"}
		if err := s.Write(ctx, Batch{Samples: samples, Statuses: []Status{st}}); err != nil {
			t.Fatal(err)
		}
		st.Fails = 2
		if err := s.Write(ctx, Batch{Statuses: []Status{st}}); err != nil {
			t.Fatal(err)
		}

		// A new Store on the same database sees everything: state survives restarts.
		s = open()
		states, err := s.States(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 1 {
			t.Fatalf("got %d states, want 1", len(states))
		}
		got := states[0]
		if got.State != StateDown || !got.Since.Equal(st.Since) || got.Fails != 2 || got.Cause != "not-listening" ||
			got.Last.RTT != 60*time.Millisecond || !got.Last.OK || got.Last.Class != probe.Open {
			t.Errorf("state = %+v", got)
		}

		u, err := s.Uptime(ctx, LocalSource, "db", t0)
		if err != nil {
			t.Fatal(err)
		}
		if u.Total != 60 || u.OK != 45 {
			t.Errorf("uptime = %+v, want 45/60", u)
		}
		all, err := s.Uptimes(ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		if all[UptimeKey{"agent-1", "db"}] != (Uptime{OK: 0, Total: 1}) || all[UptimeKey{LocalSource, "db"}] != u {
			t.Errorf("uptimes = %v", all)
		}

		pts, err := s.Latency(ctx, LocalSource, "db", t0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 10 {
			t.Fatalf("got %d points, want 10 one-minute buckets", len(pts))
		}
		// First minute: samples 0..5, RTTs 1..6ms, samples 0 and 4 failed.
		if p := pts[0]; !p.Time.Equal(t0) || p.N != 6 || p.OK != 4 || p.MaxRTT != 6*time.Millisecond || p.AvgRTT != 3500*time.Microsecond {
			t.Errorf("first point = %+v", p)
		}
	})
}

func TestStoreTransitions(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		open := func() *Store { return openTestStore(t, dsn) }
		ctx := context.Background()
		s := open()
		t0 := time.UnixMilli(time.Now().UnixMilli())
		up := Transition{Endpoint: "db", Source: LocalSource, Time: t0, From: StateUnknown, To: StateUp, Class: probe.Open}
		down := Transition{Endpoint: "db", Source: LocalSource, Time: t0.Add(time.Second), From: StateUp, To: StateDown, Class: probe.Refused, Errno: 111}
		other := Transition{Endpoint: "db", Source: "agent-1", Time: t0.Add(time.Second), From: StateUp, To: StateDown, Class: probe.Timeout}
		if err := s.Write(ctx, Batch{Transitions: []Transition{up, down, other}}); err != nil {
			t.Fatal(err)
		}
		d := Diagnosis{Cause: "not-listening", Verdict: "nothing listens on 127.0.0.1:5432",
			Findings: []Finding{{Cause: "not-listening", Confidence: "confirmed", Issue: "Server not running", Evidence: "no socket on :5432", Fix: "start it"}},
			Report:   []byte(`{"verdict":"x"}`)}
		down.Diagnosis = &d
		// The diagnosis comes in a later batch and finds its transition by source, endpoint and time.
		if err := s.Write(ctx, Batch{Diagnoses: []Transition{down}}); err != nil {
			t.Fatal(err)
		}
		ts, err := open().Transitions(ctx, LocalSource, "db", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 2 || ts[0].ID == ts[1].ID || ts[0].To != StateDown || ts[1].To != StateUp {
			t.Fatalf("transitions = %+v", ts)
		}
		g := ts[0]
		if g.To != StateDown || g.Errno != 111 || g.Diagnosis == nil || g.Diagnosis.Cause != "not-listening" ||
			len(g.Diagnosis.Findings) != 1 || g.Diagnosis.Findings[0] != d.Findings[0] || string(g.Diagnosis.Report) != `{"verdict":"x"}` {
			t.Errorf("down transition = %+v diag %+v", g, g.Diagnosis)
		}
		if ts[1].Diagnosis != nil {
			t.Errorf("up transition has a diagnosis")
		}
		if ts, _ := s.Transitions(ctx, "agent-1", "db", 10); len(ts) != 1 || ts[0].Diagnosis != nil {
			t.Errorf("the other source's transition: %+v", ts)
		}
	})
}

func TestStoreCompact(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		open := func() *Store { return openTestStore(t, dsn) }
		ctx := context.Background()
		s := open()
		now := time.UnixMilli(time.Now().UnixMilli() / RollupWidth.Milliseconds() * RollupWidth.Milliseconds())
		var samples []Sample
		// 3 days of one sample a minute; every 10th failed.
		for i := range 3 * 24 * 60 {
			samples = append(samples, Sample{Endpoint: "api", Source: LocalSource, Time: now.Add(-time.Duration(i+1) * time.Minute),
				OK: i%10 != 0, Class: probe.Open, RTT: time.Duration(i%7+1) * time.Millisecond})
		}
		if err := s.Write(ctx, Batch{Samples: samples}); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, Batch{Transitions: []Transition{{Endpoint: "api", Source: LocalSource, Time: now.Add(-50 * time.Hour), From: StateUp, To: StateDown, Class: probe.Refused}}}); err != nil {
			t.Fatal(err)
		}
		before, err := s.Uptime(ctx, LocalSource, "api", now.Add(-48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		beforeMax, err := s.Latency(ctx, LocalSource, "api", now.Add(-48*time.Hour), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(ctx, now, time.Hour, 48*time.Hour); err != nil {
			t.Fatal(err)
		}
		// Compacting twice changes nothing.
		if err := s.Compact(ctx, now, time.Hour, 48*time.Hour); err != nil {
			t.Fatal(err)
		}
		after, err := s.Uptime(ctx, LocalSource, "api", now.Add(-48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if after != before || after.Total != 48*60 {
			t.Errorf("uptime over 48h: before %+v, after %+v; want 2880 probes either way", before, after)
		}
		afterMax, err := s.Latency(ctx, LocalSource, "api", now.Add(-48*time.Hour), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var nb, na int64
		for _, p := range beforeMax {
			nb += p.N
		}
		for _, p := range afterMax {
			na += p.N
		}
		if nb != na || len(afterMax) == 0 || afterMax[0].MaxRTT != 7*time.Millisecond {
			t.Errorf("latency before %+v after %+v", beforeMax, afterMax)
		}
		// Raw samples only for the last hour; nothing older than 48h.
		var raw, old int
		s.db.QueryRow(`SELECT COUNT(*) FROM samples`).Scan(&raw)
		s.db.QueryRow(s.q(`SELECT COUNT(*) FROM rollups WHERE bucket < ?`), now.Add(-48*time.Hour).UnixMilli()).Scan(&old)
		if raw != 60 || old != 0 {
			t.Errorf("%d raw samples (want 60), %d rollups past retention (want 0)", raw, old)
		}
		if ts, _ := s.Transitions(ctx, LocalSource, "api", 10); len(ts) != 0 {
			t.Errorf("transitions past retention kept: %+v", ts)
		}
	})
}

func TestStoreMigrationsIdempotent(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		open := func() *Store { return openTestStore(t, dsn) }
		s := open()
		open()
		var v int
		if err := s.db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != len(migrations) {
			t.Errorf("schema version %d (%v), want %d", v, err, len(migrations))
		}
		if _, err := s.db.Exec(s.q(`INSERT INTO schema_migrations (version, applied) VALUES (?, 0)`), len(migrations)+1); err != nil {
			t.Fatal(err)
		}
		_, err := OpenStore(context.Background(), dsn)
		if err == nil {
			t.Fatal("a database from a newer reach was accepted")
		}
	})
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://reach:s3cret@127.0.0.1/reach":               "postgres://reach:xxxxx@127.0.0.1/reach",
		"postgres://reach@127.0.0.1/reach?password=s3cret&x=1":  "postgres://reach@127.0.0.1/reach?password=xxxxx&x=1",
		"postgres://reach@127.0.0.1:5432/reach?sslmode=disable": "postgres://reach@127.0.0.1:5432/reach?sslmode=disable",
		"/var/lib/reach/reach.db":                               "/var/lib/reach/reach.db",
		"reach.db":                                              "reach.db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A SQLite path is a path, even with characters a file: URI gives meaning to.
func TestStoreOddPath(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a?b.db", "c#d.db", "e%41.db"} {
		p := filepath.Join(dir, name)
		s, err := OpenStore(t.Context(), p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s.Close()
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: the store is not at its path: %v", name, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), "-wal") && !strings.HasSuffix(e.Name(), "-shm") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 3 {
		t.Errorf("files %q, want the three asked for", names)
	}
}
