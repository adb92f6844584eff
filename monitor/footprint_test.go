package monitor

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHistoryFootprint estimates what 30 days of history at a 10 s
// interval keep, before and after the hourly level: it builds what the
// single-level store held (schema 1: 2h of raw samples, 5-minute buckets for
// the rest of 30 days) for REACH_BENCH_ENDPOINTS endpoints (default 100),
// measures rows and bytes, upgrades the schema (upgrade-ms: the migration
// indexes the old buckets), compacts while a write every 100ms notes its
// longest wait, and measures again. The "-10k" metrics extrapolate linearly
// to 10,000 endpoints. SQLite, and PostgreSQL when REACH_TEST_POSTGRES is
// set. Run it with bench/history-size.
func BenchmarkHistoryFootprint(b *testing.B) {
	eps := 100
	if v := os.Getenv("REACH_BENCH_ENDPOINTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 2000 {
			b.Fatalf("REACH_BENCH_ENDPOINTS=%q: want 1..2000", v)
		}
		eps = n
	}
	dsns := map[string]func(b *testing.B) string{
		"sqlite": func(b *testing.B) string { return filepath.Join(b.TempDir(), "reach.db") },
	}
	if dsn := os.Getenv("REACH_TEST_POSTGRES"); dsn != "" {
		dsns["postgres"] = func(b *testing.B) string { return pgSchema(b, dsn) }
	}
	for name, dsn := range dsns {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				footprint(b, dsn(b), eps)
			}
		})
	}
}

// pgSchema returns dsn pointed at a fresh schema, dropped after b.
func pgSchema(b *testing.B, dsn string) string {
	r := make([]byte, 6)
	rand.Read(r)
	schema := "reach_bench_" + hex.EncodeToString(r)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		b.Fatalf("create schema: %v", err)
	}
	b.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	sep := "?"
	if containsQuery(dsn) {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

func footprint(b *testing.B, dsn string, eps int) {
	ctx := b.Context()
	const interval, retain, raw = 10 * time.Second, 30 * 24 * time.Hour, DefaultRawFor
	now := time.Now().Truncate(RollupWidth)
	cut := now.Add(-raw)
	old, err := openDB(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	if err := old.migrateTo(ctx, 1); err != nil {
		b.Fatal(err)
	}
	// Raw samples for the last 2h, as Write stores them.
	for e := range eps {
		var batch Batch
		for at := cut; at.Before(now); at = at.Add(interval) {
			batch.Samples = append(batch.Samples, Sample{Endpoint: benchName(e), Source: LocalSource, Time: at,
				OK: at.Unix()%97 != 0, Class: "open", RTT: time.Duration(800+at.Unix()%1500) * time.Microsecond})
		}
		if err := old.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	// 5-minute buckets for the rest of 30 days, as the old Compact made them.
	per := int64(RollupWidth / interval)
	err = old.tx(ctx, func(tx *sql.Tx) error {
		var args []any
		flush := func() error {
			if len(args) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, old.q(`INSERT INTO rollups (endpoint, source, bucket, n, ok_n, rtt_sum_us, rtt_max_us) VALUES `+values(len(args)/7, 7)), args...)
			args = args[:0]
			return err
		}
		for e := range eps {
			for at := now.Add(-retain); at.Before(cut); at = at.Add(RollupWidth) {
				v := at.Unix() / 300
				args = append(args, benchName(e), LocalSource, at.UnixMilli(), per, per-v%2, per*(800+v%1500), 2300+v%4000)
				if len(args) == 7*rowsPerInsert {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		return flush()
	})
	if err != nil {
		b.Fatal(err)
	}
	rowsBefore, bytesBefore := footprintOf(b, old)
	old.Close()

	start := time.Now()
	s, err := OpenStore(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	upgrade := time.Since(start)
	// The monitor's batch writer goes on during the first compaction, the
	// one with the backlog: how long does a write wait?
	stop := make(chan struct{})
	waited := make(chan time.Duration)
	go func() {
		var worst time.Duration
		defer func() { waited <- worst }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			t0 := time.Now()
			err := s.Write(ctx, Batch{Samples: []Sample{{Endpoint: "writer", Source: LocalSource, Time: now.Add(time.Duration(i) * time.Millisecond), OK: true, Class: "open"}}})
			if err != nil {
				b.Error(err)
			}
			worst = max(worst, time.Since(t0))
		}
	}()
	start = time.Now()
	err = s.Compact(ctx, now, raw, retain)
	first := time.Since(start)
	close(stop)
	worstWrite := <-waited
	if err != nil {
		b.Fatal(err)
	}
	// What each later compaction costs: five minutes on.
	start = time.Now()
	if err := s.Compact(ctx, now.Add(compactEvery), raw, retain); err != nil {
		b.Fatal(err)
	}
	next := time.Since(start)
	rowsAfter, bytesAfter := footprintOf(b, s)

	scale := 10_000 / float64(eps)
	b.ReportMetric(float64(rowsBefore), "rows-before")
	b.ReportMetric(float64(rowsAfter), "rows-after")
	b.ReportMetric(float64(bytesBefore)/1e6, "MB-before")
	b.ReportMetric(float64(bytesAfter)/1e6, "MB-after")
	b.ReportMetric(float64(rowsBefore)*scale/1e6, "Mrows-before-10k")
	b.ReportMetric(float64(rowsAfter)*scale/1e6, "Mrows-after-10k")
	b.ReportMetric(float64(bytesBefore)*scale/1e9, "GB-before-10k")
	b.ReportMetric(float64(bytesAfter)*scale/1e9, "GB-after-10k")
	b.ReportMetric(float64(upgrade.Milliseconds()), "upgrade-ms")
	b.ReportMetric(float64(first.Milliseconds()), "first-compact-ms")
	b.ReportMetric(float64(worstWrite.Milliseconds()), "max-write-ms-meanwhile")
	b.ReportMetric(float64(next.Microseconds())/1000, "next-compact-ms")
}

func benchName(i int) string { return fmt.Sprintf("endpoint-%05d", i) }

// footprintOf counts the history rows and the bytes the database holds for
// them (tables and indexes), after a VACUUM so dead rows do not count.
func footprintOf(b *testing.B, s *Store) (rows, bytes int64) {
	ctx := context.Background()
	tables := []string{"samples", "rollups"}
	var have int
	s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&have)
	if have >= 2 {
		tables = append(tables, "rollups_hourly")
	}
	for _, t := range tables {
		var n int64
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t).Scan(&n); err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	if s.postgres {
		for _, t := range tables {
			if _, err := s.db.ExecContext(ctx, `VACUUM FULL `+t); err != nil {
				b.Fatal(err)
			}
			var n int64
			if err := s.db.QueryRowContext(ctx, `SELECT pg_total_relation_size($1::regclass)`, t).Scan(&n); err != nil {
				b.Fatal(err)
			}
			bytes += n
		}
		return rows, bytes
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM`); err != nil {
		b.Fatal(err)
	}
	// The b-trees of the history tables and their indexes; states and
	// transitions are the same before and after.
	err := s.db.QueryRowContext(ctx, `SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name IN ('samples', 'rollups', 'rollups_hourly'))`).Scan(&bytes)
	if err != nil {
		b.Fatal(err)
	}
	return rows, bytes
}
