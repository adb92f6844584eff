package monitor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/probe"
)

// rollupNow is the fixed "now" of the level tests: not on a 5-minute or
// hour boundary, so the cuts' rounding shows.
var rollupNow = time.Date(2026, 3, 10, 12, 2, 30, 0, time.UTC)

// tenDays is one sample a minute (at hh:mm:30) for the 10 days before
// rollupNow: every 10th failed, RTTs cycle 1..7ms, the odd one 50ms.
func tenDays() []Sample {
	var out []Sample
	for i := 1; i <= 10*24*60; i++ {
		rtt := time.Duration(i%7+1) * time.Millisecond
		if i%997 == 0 {
			rtt = 50 * time.Millisecond
		}
		out = append(out, Sample{Endpoint: "api", Source: LocalSource, Time: rollupNow.Add(-time.Duration(i) * time.Minute),
			OK: i%10 != 0, Class: probe.Open, RTT: rtt})
	}
	return out
}

// rawUptime and rawLatency answer from the samples themselves: what every
// level must agree with for windows starting on a bucket boundary.
func rawUptime(samples []Sample, since time.Time) Uptime {
	var u Uptime
	for _, s := range samples {
		if !s.Time.Before(since) {
			u.Total++
			if s.OK {
				u.OK++
			}
		}
	}
	return u
}

func rawLatency(samples []Sample, since time.Time, w time.Duration) []Point {
	type agg struct{ n, ok, sum, max int64 }
	by := map[int64]*agg{}
	var keys []int64
	for _, s := range samples {
		if s.Time.Before(since) {
			continue
		}
		b := s.Time.UnixMilli() / w.Milliseconds() * w.Milliseconds()
		a := by[b]
		if a == nil {
			a = &agg{}
			by[b] = a
			keys = append(keys, b)
		}
		rtt := s.RTT.Microseconds()
		a.n, a.sum, a.max = a.n+1, a.sum+rtt, max(a.max, rtt)
		if s.OK {
			a.ok++
		}
	}
	var out []Point
	for i := len(keys) - 1; i >= 0; i-- { // samples are newest first
		a := by[keys[i]]
		out = append(out, Point{Time: ms(keys[i]), N: a.n, OK: a.ok, AvgRTT: time.Duration(a.sum/a.n) * time.Microsecond, MaxRTT: time.Duration(a.max) * time.Microsecond})
	}
	return out
}

// levelRows counts the rows and probes of LocalSource at each level.
func levelRows(t *testing.T, s *Store) (rows, probes [3]int64) {
	t.Helper()
	for i, q := range []string{`SELECT COUNT(*), COUNT(*) FROM samples WHERE source = ?`,
		`SELECT COUNT(*), COALESCE(SUM(n), 0) FROM rollups WHERE source = ?`,
		`SELECT COUNT(*), COALESCE(SUM(n), 0) FROM rollups_hourly WHERE source = ?`} {
		if err := s.db.QueryRow(s.q(q), LocalSource).Scan(&rows[i], &probes[i]); err != nil {
			t.Fatal(err)
		}
	}
	return rows, probes
}

// dump is every row of every level, to show what a compaction changed.
func dump(t *testing.T, s *Store) string {
	t.Helper()
	h, args := history(`1 = 1`)
	rows, err := s.db.Query(h+` ORDER BY t, n`, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := ""
	for rows.Next() {
		var src, ep string
		var ts, n, ok, sum, mx int64
		if err := rows.Scan(&src, &ep, &ts, &n, &ok, &sum, &mx); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintln(src, ep, ts, n, ok, sum, mx)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// uptimeCases are windows over tenDays compacted at rollupNow with 2h raw
// and 7 days' retention, by the levels they span.
var uptimeCases = []struct {
	name  string
	since time.Time
	// from is where the answer starts: a downsampled bucket counts from
	// its start, retention ends the history.
	from  time.Time
	total int64
}{
	{"raw", rollupNow.Add(-time.Hour), rollupNow.Add(-time.Hour), 60},
	{"raw+5m", time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC), 1442},
	{"5m mid-bucket", time.Date(2026, 3, 9, 12, 1, 0, 0, time.UTC), time.Date(2026, 3, 9, 12, 5, 0, 0, time.UTC), 1437},
	{"raw+5m+hourly", time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC), 7202},
	{"hourly mid-bucket", time.Date(2026, 3, 5, 12, 30, 0, 0, time.UTC), time.Date(2026, 3, 5, 13, 0, 0, 0, time.UTC), 7142},
	// Retention: the hourly bucket of 03-03 12:00 started before now-7d.
	{"past retention", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 13, 0, 0, 0, time.UTC), 10022},
}

// checkLevels asserts what tenDays compacted at rollupNow must read as.
func checkLevels(t *testing.T, s *Store, samples []Sample) {
	t.Helper()
	ctx := context.Background()
	rows, probes := levelRows(t, s)
	// Raw from 10:00 (now-2h on a 5-minute boundary), 5-minute buckets
	// from 03-08 12:00 (now-48h on an hour boundary), hourly from 03-03 13:00.
	if want := [3]int64{122, 46 * 12, 5*24 - 1}; rows != want {
		t.Errorf("rows per level (raw, 5m, hourly) = %v, want %v", rows, want)
	}
	if want := [3]int64{122, 46 * 60, (5*24 - 1) * 60}; probes != want {
		t.Errorf("probes per level = %v, want %v", probes, want)
	}
	for _, c := range uptimeCases {
		want := rawUptime(samples, c.from)
		if want.Total != c.total {
			t.Fatalf("%s: the samples have %d probes from %v, the case says %d", c.name, want.Total, c.from, c.total)
		}
		got, err := s.Uptime(ctx, LocalSource, "api", c.since)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: uptime since %v = %+v, want %+v", c.name, c.since, got, want)
		}
		all, err := s.Uptimes(ctx, c.since)
		if err != nil {
			t.Fatal(err)
		}
		if all[UptimeKey{LocalSource, "api"}] != want {
			t.Errorf("%s: uptimes since %v = %v, want %+v", c.name, c.since, all, want)
		}
	}
	for _, c := range []struct {
		name  string
		since time.Time
		w     time.Duration
	}{
		{"dashboard hour", rollupNow.Add(-time.Hour), 30 * time.Second},
		{"dashboard day", time.Date(2026, 3, 9, 12, 5, 0, 0, time.UTC), RollupWidth},
		{"days over every level", time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), 24 * time.Hour},
		{"hours over every level", time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), time.Hour},
	} {
		got, err := s.Latency(ctx, LocalSource, "api", c.since, c.w)
		if err != nil {
			t.Fatal(err)
		}
		want := rawLatency(samples, c.since, c.w)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: latency since %v by %v:\n got %d points %+v\nwant %d points %+v", c.name, c.since, c.w, len(got), head(got), len(want), head(want))
		}
	}
	// Finer buckets than the data has: hourly points where only hours are left.
	got, err := s.Latency(ctx, LocalSource, "api", time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC), RollupWidth)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 3 || !got[0].Time.Equal(time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC)) || got[0].N != 60 ||
		!got[1].Time.Equal(time.Date(2026, 3, 8, 11, 0, 0, 0, time.UTC)) || got[1].N != 60 ||
		!got[2].Time.Equal(time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)) || got[2].N != 5 {
		t.Errorf("5-minute latency across the hourly boundary starts %+v", head(got))
	}
}

func head(p []Point) []Point { return p[:min(len(p), 3)] }

// readings are answers that do not depend on how the history is split
// into levels: every source's uptime and day-by-day latency since rollupNow-8d.
func readings(t *testing.T, s *Store) string {
	t.Helper()
	ctx := context.Background()
	since := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	all, err := s.Uptimes(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintln(all) // fmt sorts map keys
	keys := slices.SortedFunc(maps.Keys(all), func(a, b UptimeKey) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Endpoint, b.Endpoint))
	})
	for _, k := range keys {
		p, err := s.Latency(ctx, k.Source, k.Endpoint, since, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintln(k, p)
	}
	return out
}

func TestStoreLevels(t *testing.T) {
	for _, c := range []struct {
		name     string
		foldRows int
	}{
		{"one step a level", defaultFoldRows},
		{"many steps a level", 700},
	} {
		t.Run(c.name, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, dsn string) {
				testLevels(t, openTestStore(t, dsn), c.foldRows)
			})
		})
	}
}

func testLevels(t *testing.T, s *Store, foldRows int) {
	ctx := context.Background()
	s.foldRows = foldRows
	compact := func(now time.Time) error { return s.Compact(ctx, now, 2*time.Hour, 7*24*time.Hour) }
	samples := tenDays()
	if err := s.Write(ctx, Batch{Samples: samples}); err != nil {
		t.Fatal(err)
	}
	// Before compaction every answer comes from raw samples.
	for _, c := range uptimeCases[:5] {
		if got, _ := s.Uptime(ctx, LocalSource, "api", c.since); got != rawUptime(samples, c.since) {
			t.Errorf("%s before compaction: %+v", c.name, got)
		}
	}
	want := readings(t, s)
	// A compaction interrupted after some steps has folded the oldest rows
	// up to a bucket boundary, what a fold with an earlier cut does.
	if err := s.fold(ctx, "samples", "ts", "COUNT(*), SUM(ok), SUM(rtt_us), MAX(rtt_us)", "rollups",
		RollupWidth.Milliseconds(), time.Date(2026, 3, 4, 17, 35, 0, 0, time.UTC).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if got := readings(t, s); got != want {
		t.Errorf("half a fold changed the answers:\n got %s\nwant %s", got, want)
	}
	if err := compact(rollupNow); err != nil {
		t.Fatal(err)
	}
	checkLevels(t, s, samples)
	before := dump(t, s)
	if err := compact(rollupNow); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, s); after != before {
		t.Errorf("compacting again changed the history:\nbefore:\n%.2000s\nafter:\n%.2000s", before, after)
	}

	// A late sample (an agent's delayed report) for an hour already folded
	// is added to it. A compaction that fails half-way (here: the hourly
	// table is missing when its fold runs) changes no answer; run again, it
	// counts every probe once.
	hour := time.Date(2026, 3, 6, 7, 0, 0, 0, time.UTC)
	early := Sample{Endpoint: "api", Source: "agent-1", Time: hour.Add(time.Minute), OK: true, Class: probe.Open, RTT: 20 * time.Millisecond}
	late := Sample{Endpoint: "api", Source: "agent-1", Time: hour.Add(59 * time.Minute), OK: false, Class: probe.Refused, RTT: 90 * time.Millisecond}
	if err := s.Write(ctx, Batch{Samples: []Sample{early}}); err != nil {
		t.Fatal(err)
	}
	if err := compact(rollupNow); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, Batch{Samples: []Sample{late}}); err != nil {
		t.Fatal(err)
	}
	want = readings(t, s)
	if _, err := s.db.Exec(`ALTER TABLE rollups_hourly RENAME TO rollups_hourly_away`); err != nil {
		t.Fatal(err)
	}
	if err := compact(rollupNow); err == nil {
		t.Fatal("compaction without the hourly table succeeded")
	}
	if _, err := s.db.Exec(`ALTER TABLE rollups_hourly_away RENAME TO rollups_hourly`); err != nil {
		t.Fatal(err)
	}
	if got := readings(t, s); got != want {
		t.Errorf("a failed compaction changed the answers:\n got %s\nwant %s", got, want)
	}
	if err := compact(rollupNow); err != nil {
		t.Fatal(err)
	}
	if got := readings(t, s); got != want {
		t.Errorf("compaction after a failed one changed the answers:\n got %s\nwant %s", got, want)
	}
	var n, okN, sum, mx int64
	if err := s.db.QueryRow(s.q(`SELECT n, ok_n, rtt_sum_us, rtt_max_us FROM rollups_hourly WHERE source = ? AND bucket = ?`),
		"agent-1", hour.UnixMilli()).Scan(&n, &okN, &sum, &mx); err != nil || n != 2 || okN != 1 || sum != 110000 || mx != 90000 {
		t.Errorf("the late sample's hour: n=%d ok=%d sum=%dus max=%dus (%v), want 2, 1, 110000, 90000", n, okN, sum, mx, err)
	}
	checkLevels(t, s, samples)

	// Later compactions move the cuts on; the answers stay exact.
	if err := compact(rollupNow.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	got, err := s.Latency(ctx, LocalSource, "api", since, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := rawLatency(samples, since, 24*time.Hour); !reflect.DeepEqual(got, want) {
		t.Errorf("days after a later compaction:\n got %+v\nwant %+v", got, want)
	}
	// Cuts at 13:00 (no raw sample left), 03-08 15:00 and 03-03 15:02:30.
	if rows, _ := levelRows(t, s); rows != [3]int64{0, 45*12 + 1, 5*24 - 1} {
		t.Errorf("rows per level 3h later = %v", rows)
	}
}

// A database written by a reach with only the 5-minute level (schema 1)
// upgrades in place, keeps its history and compacts into hours.
func TestStoreUpgradeFromSingleLevel(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		old, err := openDB(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.migrateTo(ctx, 1); err != nil {
			t.Fatal(err)
		}
		samples := tenDays()
		if err := old.Write(ctx, Batch{Samples: samples}); err != nil {
			t.Fatal(err)
		}
		// What the old Compact left: 5-minute buckets for everything
		// older than 2h, raw samples after.
		cut := rollupNow.Add(-2*time.Hour).UnixMilli() / RollupWidth.Milliseconds() * RollupWidth.Milliseconds()
		if err := old.fold(ctx, "samples", "ts", "COUNT(*), SUM(ok), SUM(rtt_us), MAX(rtt_us)", "rollups", RollupWidth.Milliseconds(), cut); err != nil {
			t.Fatal(err)
		}
		old.Close()

		s := openTestStore(t, dsn)
		var v int
		if err := s.db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != len(migrations) {
			t.Fatalf("schema version %d (%v) after upgrade, want %d", v, err, len(migrations))
		}
		if rows, _ := levelRows(t, s); rows != [3]int64{122, 10*24*12 - 24, 0} {
			t.Errorf("rows per level after upgrade = %v, want the old history untouched", rows)
		}
		for _, c := range uptimeCases[:4] {
			if got, _ := s.Uptime(ctx, LocalSource, "api", c.since); got != rawUptime(samples, c.from) {
				t.Errorf("%s after upgrade: %+v, want %+v", c.name, got, rawUptime(samples, c.from))
			}
		}
		if err := s.Compact(ctx, rollupNow, 2*time.Hour, 7*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		checkLevels(t, s, samples)
	})
}

// A fold step moves at least a whole bucket, even when more rows than a
// step reads share one time (many endpoints probed at the same instant).
func TestStoreFoldStepsForward(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s := openTestStore(t, dsn)
		s.foldRows = 2
		var samples []Sample
		for i := range 3 * 4 {
			at := rollupNow.Add(-3*time.Hour - time.Duration(i/4)*RollupWidth) // 4 samples per bucket...
			for _, ep := range []string{"a", "b", "c"} {                       // ...of 3 endpoints at one instant
				samples = append(samples, Sample{Endpoint: ep, Source: LocalSource, Time: at, OK: i%2 == 0, Class: probe.Open, RTT: time.Duration(i+1) * time.Millisecond})
			}
		}
		if err := s.Write(ctx, Batch{Samples: samples}); err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(ctx, rollupNow, 2*time.Hour, 7*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if rows, probes := levelRows(t, s); rows != [3]int64{0, 9, 0} || probes != [3]int64{0, 36, 0} {
			t.Errorf("rows %v probes %v per level, want 9 5-minute buckets of 4", rows, probes)
		}
		for _, ep := range []string{"a", "b", "c"} {
			if u, err := s.Uptime(ctx, LocalSource, ep, rollupNow.Add(-24*time.Hour)); err != nil || u != (Uptime{OK: 6, Total: 12}) {
				t.Errorf("%s: uptime %+v (%v), want 6/12", ep, u, err)
			}
		}
	})
}

// TestStoreFoldKeepsLateSamples: a sample older than the cut that commits
// while a fold step runs (an agent's results after a hub outage) is either
// folded or left for the next compaction, never deleted uncounted. In
// PostgreSQL each statement of a READ COMMITTED transaction sees a new
// snapshot, so a fold's DELETE could see rows its INSERT ... SELECT did not.
// The test holds the fold's INSERT on a locked rollup row while the late
// sample commits. (SQLite runs one writer at a time: no such window.)
func TestStoreFoldKeepsLateSamples(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		s := openTestStore(t, dsn)
		if !s.postgres {
			t.Skip("SQLite serialises writers")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		at := rollupNow.Add(-3 * time.Hour)
		sample := Sample{Endpoint: "db", Source: LocalSource, Time: at, OK: true, Class: probe.Open, RTT: time.Millisecond}
		// A 5-minute bucket already folded, and one more sample for it.
		for range 2 {
			if err := s.Write(ctx, Batch{Samples: []Sample{sample}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Compact(ctx, rollupNow, 2*time.Hour, 7*24*time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Write(ctx, Batch{Samples: []Sample{sample}}); err != nil {
			t.Fatal(err)
		}
		other, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Rollback()
		var pid int
		if err := other.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := other.ExecContext(ctx, `UPDATE rollups SET n = n`); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Compact(ctx, rollupNow, 2*time.Hour, 7*24*time.Hour) }()
		for blocked := 0; blocked == 0; {
			select {
			case err := <-done:
				t.Fatalf("compaction ended (%v) without waiting for the locked rollup", err)
			case <-ctx.Done():
				t.Fatal("compaction never waited for the locked rollup")
			case <-time.After(10 * time.Millisecond):
			}
			if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&blocked); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := other.ExecContext(ctx, `INSERT INTO samples (endpoint, source, ts, ok, class, errno, rtt_us) VALUES ('db', $1, $2, 1, 'open', 0, 1000)`,
			LocalSource, at.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if err := other.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, probes := levelRows(t, s); probes[0]+probes[1]+probes[2] != 4 {
			t.Errorf("probes per level %v, want 4 in all: a sample was deleted without being counted\n%s", probes, dump(t, s))
		}
		if u, err := s.Uptime(ctx, LocalSource, "db", rollupNow.Add(-24*time.Hour)); err != nil || u.Total != 4 {
			t.Errorf("uptime %+v (%v), want 4 probes", u, err)
		}
	})
}
