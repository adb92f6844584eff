package monitor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "modernc.org/sqlite"             // registers driver "sqlite" (pure Go, no cgo)

	"github.com/reach-tools/reach/probe"
)

// History is kept at three levels: raw samples, then RollupWidth buckets,
// then HourlyWidth buckets, each level holding an older stretch of time
// than the one before (see Compact).
const (
	// RollupWidth is the bucket size old samples are downsampled into.
	RollupWidth = 5 * time.Minute
	// HourlyWidth is the bucket size RollupWidth buckets are folded into
	// once they are older than RollupFor.
	HourlyWidth = time.Hour
	// RollupFor is how long RollupWidth buckets are kept. Two days: the
	// dashboard's day views (24h uptime, the latency plot in 5-minute
	// buckets) then read 5-minute buckets only, with a day to spare for
	// "this time yesterday", while 30 days of history need a seventh of the
	// rows a single 5-minute level did (552 + 672 rows per endpoint, not 8,640).
	RollupFor = 48 * time.Hour
)

// ErrStore marks store failures.
var ErrStore = errors.New("monitor: store")

// Store keeps history in SQLite (a single file) or PostgreSQL, with the same
// schema applied by the same migrations. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	foldRows int // rows a fold step reads (defaultFoldRows; tests lower it)
	// lock (SQLite) or pgLock (PostgreSQL) make this process the store's
	// only writer when opened by OpenExclusive.
	lock   *os.File
	pgMu   sync.Mutex // guards pgLock and dsn
	pgLock *sql.Conn
	dsn    string // PostgreSQL opened by OpenExclusive: to take the lock again
	shared bool   // opened by OpenReplica: the lock is shared by replicas
}

// OpenStore opens (and migrates) a store. dsn is a postgres:// or
// postgresql:// URL, or else a SQLite file path.
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	s, err := openDB(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// pgConns bounds a process's connections to PostgreSQL, so a fleet of
// replicas stays well inside the server's max_connections (100 by default).
const pgConns = 12

// openDB connects without migrating.
func openDB(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{foldRows: defaultFoldRows}
	var err error
	if isPostgres(dsn) {
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
		if err == nil {
			// database/sql keeps 2 idle connections by default: a replica's
			// writer, poller, leases, alerts and readers use more at once,
			// and each one past 2 was closed after use and opened again (a
			// new server process, every statement prepared again), several
			// a second.
			s.db.SetMaxOpenConns(pgConns)
			s.db.SetMaxIdleConns(pgConns)
			s.db.SetConnMaxIdleTime(5 * time.Minute)
		}
	} else {
		if dsn == "" {
			return nil, fmt.Errorf("%w: empty SQLite path", ErrStore)
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		// The path goes into a file: URI: escape what the URI would eat
		// ("a#1.db" was opened as "a").
		path := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(dsn)
		s.db, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		// One writer at a time is all SQLite allows; readers share WAL snapshots.
		s.db.SetMaxOpenConns(4)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrStore, Redact(dsn), err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrStore, Redact(dsn), err)
	}
	return s, nil
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Redact hides the password of a postgres:// DSN (in its user part or a
// password= parameter), for messages and logs; other strings are returned
// as they are.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" || u.Host == "" && u.User == nil {
		return dsn
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Close closes the database, and releases the store to other processes.
func (s *Store) Close() error {
	s.pgMu.Lock()
	defer s.pgMu.Unlock()
	if s.pgLock != nil {
		// The server drops the lock with the session; unlock first all the
		// same, as the pool may keep the connection open a while.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.pgLock.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`)
		cancel()
		s.pgLock.Close()
		s.pgLock = nil
	}
	err := s.db.Close()
	unlockFile(s.lock)
	s.lock = nil
	return err
}

// Dialect names the database behind the store: "sqlite" or "postgres".
func (s *Store) Dialect() string {
	if s.postgres {
		return "postgres"
	}
	return "sqlite"
}

// migrations are applied in order, once each; {{id}} is the dialect's
// auto-increment primary key, and a statement that begins {{postgres}} runs
// on PostgreSQL only. Never edit a released migration: append.
var migrations = [][]string{
	{
		`CREATE TABLE samples (endpoint TEXT NOT NULL, source TEXT NOT NULL, ts BIGINT NOT NULL,
			ok INTEGER NOT NULL, class TEXT NOT NULL, errno INTEGER NOT NULL, rtt_us BIGINT NOT NULL)`,
		`CREATE INDEX samples_endpoint_ts ON samples (source, endpoint, ts)`,
		`CREATE INDEX samples_ts ON samples (ts)`,
		`CREATE TABLE rollups (endpoint TEXT NOT NULL, source TEXT NOT NULL, bucket BIGINT NOT NULL,
			n BIGINT NOT NULL, ok_n BIGINT NOT NULL, rtt_sum_us BIGINT NOT NULL, rtt_max_us BIGINT NOT NULL,
			PRIMARY KEY (source, endpoint, bucket))`,
		`CREATE TABLE states (endpoint TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL,
			since BIGINT NOT NULL, last_ts BIGINT NOT NULL, last_ok INTEGER NOT NULL, last_class TEXT NOT NULL,
			last_errno INTEGER NOT NULL, last_rtt_us BIGINT NOT NULL, oks INTEGER NOT NULL, fails INTEGER NOT NULL,
			cause TEXT NOT NULL, PRIMARY KEY (source, endpoint))`,
		`CREATE TABLE transitions (id {{id}}, endpoint TEXT NOT NULL, source TEXT NOT NULL, ts BIGINT NOT NULL,
			from_state TEXT NOT NULL, to_state TEXT NOT NULL, class TEXT NOT NULL, errno INTEGER NOT NULL,
			diagnosis TEXT)`,
		`CREATE INDEX transitions_endpoint_ts ON transitions (source, endpoint, ts)`,
	},
	{
		// The hourly level; the bucket indexes keep compaction and the
		// every-endpoint uptime from scanning whole tables.
		`CREATE TABLE rollups_hourly (endpoint TEXT NOT NULL, source TEXT NOT NULL, bucket BIGINT NOT NULL,
			n BIGINT NOT NULL, ok_n BIGINT NOT NULL, rtt_sum_us BIGINT NOT NULL, rtt_max_us BIGINT NOT NULL,
			PRIMARY KEY (source, endpoint, bucket))`,
		`CREATE INDEX rollups_hourly_bucket ON rollups_hourly (bucket)`,
		`CREATE INDEX rollups_bucket ON rollups (bucket)`,
	},
	{
		// Agents that registered with the hub, so a restart (or another
		// replica) knows them: the hub's JSON of each, by name.
		`CREATE TABLE agents (name TEXT NOT NULL PRIMARY KEY, run BIGINT NOT NULL,
			updated BIGINT NOT NULL, registration TEXT NOT NULL)`,
	},
	{
		// Replicas (several reach watch on one PostgreSQL database; see
		// Replica): who is alive, who holds each once-only job, each
		// agent's next sequence number, the state changes whose alerts are
		// still to be sent, and a revision per status so each replica
		// reads what the others changed. SQLite gets them too, unused:
		// one schema for both.
		`CREATE TABLE replicas (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL,
			started BIGINT NOT NULL, heartbeat BIGINT NOT NULL)`,
		`CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired BIGINT NOT NULL,
			renewed BIGINT NOT NULL, expires BIGINT NOT NULL)`,
		`CREATE TABLE agent_seqs (agent TEXT PRIMARY KEY, run BIGINT NOT NULL, next BIGINT NOT NULL)`,
		`CREATE TABLE outbox (id {{id}}, transition_id BIGINT NOT NULL, created BIGINT NOT NULL,
			ready INTEGER NOT NULL, alert TEXT NOT NULL, sent BIGINT, sent_by TEXT)`,
		`CREATE INDEX outbox_unsent ON outbox (id) WHERE sent IS NULL`,
		`CREATE INDEX outbox_transition ON outbox (transition_id)`,
		`CREATE TABLE revs (id INTEGER PRIMARY KEY, rev BIGINT NOT NULL)`,
		`INSERT INTO revs (id, rev) VALUES (1, 0)`,
		`ALTER TABLE states ADD COLUMN target TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE states ADD COLUMN rev BIGINT NOT NULL DEFAULT 0`,
		`CREATE INDEX states_rev ON states (rev)`,
	},
	{
		// When each agent's results last reached any replica, so the one
		// that looks for stale agents sees the calls the others took.
		`ALTER TABLE agent_seqs ADD COLUMN seen BIGINT NOT NULL DEFAULT 0`,
	},
	{
		// Maintenance windows made through the API, so they outlive a
		// restart and every replica sees them: one-off, [start_ms, end_ms);
		// endpoints is a JSON list (empty: every endpoint).
		`CREATE TABLE windows (id {{id}}, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
			endpoints TEXT NOT NULL, reason TEXT NOT NULL, created BIGINT NOT NULL)`,
		`CREATE INDEX windows_end ON windows (end_ms)`,
	},
	{
		// The last sample's time at the status's revision: replicas give a
		// status a new revision (for the others to read) on a change, or
		// when the last sample they were given grows old; in between, an
		// update changes no indexed column, which PostgreSQL makes in the
		// row's own page (HOT) when the page has room.
		`ALTER TABLE states ADD COLUMN rev_ts BIGINT NOT NULL DEFAULT 0`,
		`{{postgres}} ALTER TABLE states SET (fillfactor = 50)`,
	},
}

func (s *Store) migrate(ctx context.Context) error { return s.migrateTo(ctx, len(migrations)) }

// migrateTo applies the migrations up to version last (tests build old
// schemas with it).
func (s *Store) migrateTo(ctx context.Context, last int) error {
	if !s.postgres {
		return s.migrateWith(ctx, s.db, func(f func(*sql.Tx) error) error { return s.tx(ctx, f) }, last)
	}
	// Replicas start together: one migrates while the others wait on a
	// lock held to the end of its transaction, then find it done. (Two
	// CREATE TABLE IF NOT EXISTS at once fail on PostgreSQL's catalog.)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, int32(pgLockClass)); err != nil {
			return fmt.Errorf("lock for migrations: %v", err)
		}
		return s.migrateWith(ctx, tx, func(f func(*sql.Tx) error) error { return f(tx) }, last)
	})
}

// execQuerier is *sql.DB or *sql.Tx.
type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrateWith applies the migrations past the stored version through db,
// each version in a transaction that inTx gives.
func (s *Store) migrateWith(ctx context.Context, db execQuerier, inTx func(func(*sql.Tx) error) error, last int) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("%w: create schema_migrations: %v", ErrStore, err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("%w: read schema version: %v", ErrStore, err)
	}
	if have > len(migrations) {
		return fmt.Errorf("%w: the database has schema version %d, this reach knows only %d; upgrade reach", ErrStore, have, len(migrations))
	}
	id := "INTEGER PRIMARY KEY"
	if s.postgres {
		id = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
	}
	for v := have + 1; v <= last; v++ {
		err := inTx(func(tx *sql.Tx) error {
			for _, stmt := range migrations[v-1] {
				stmt, pgOnly := strings.CutPrefix(stmt, "{{postgres}} ")
				if pgOnly && !s.postgres {
					continue
				}
				if _, err := tx.ExecContext(ctx, strings.ReplaceAll(stmt, "{{id}}", id)); err != nil {
					return fmt.Errorf("migration %d: %v", v, err)
				}
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`), v, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// q rewrites ? placeholders to PostgreSQL's $n.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin: %v", ErrStore, err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %v", ErrStore, err)
	}
	return nil
}

// rowsPerInsert bounds a multi-row INSERT (12 columns x 100 rows stays far
// below SQLite's and PostgreSQL's parameter limits).
const rowsPerInsert = 100

// values returns "(?,?),(?,?)..." for rows of cols placeholders.
func values(rows, cols int) string {
	row := "(" + strings.Repeat("?,", cols-1) + "?)"
	return strings.Repeat(row+",", rows-1) + row
}

// Batch is what one write stores, in one transaction.
type Batch struct {
	Samples     []Sample
	Statuses    []Status     // upserted: the latest per endpoint and source
	Transitions []Transition // inserted
	// Diagnoses attach each Diagnosis to the stored transition of the same
	// source, endpoint and time (written by this or an earlier batch).
	Diagnoses []Transition
}

// Len is the number of rows the batch writes.
func (b Batch) Len() int {
	return len(b.Samples) + len(b.Statuses) + len(b.Transitions) + len(b.Diagnoses)
}

// Write stores a batch in one transaction: all of it or, on error, none.
func (s *Store) Write(ctx context.Context, b Batch) error {
	if err := s.keepLock(ctx); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for rows := b.Samples; len(rows) > 0; {
			chunk := rows[:min(len(rows), rowsPerInsert)]
			rows = rows[len(chunk):]
			args := make([]any, 0, 7*len(chunk))
			for _, sm := range chunk {
				args = append(args, sm.Endpoint, sm.Source, sm.Time.UnixMilli(), boolInt(sm.OK), string(sm.Class), sm.Errno, sm.RTT.Microseconds())
			}
			q := `INSERT INTO samples (endpoint, source, ts, ok, class, errno, rtt_us) VALUES ` + values(len(chunk), 7)
			if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
				return fmt.Errorf("insert samples: %v", err)
			}
		}
		// Statuses are unique per source and endpoint, as one upsert requires.
		for rows := b.Statuses; len(rows) > 0; {
			chunk := rows[:min(len(rows), rowsPerInsert)]
			rows = rows[len(chunk):]
			args := make([]any, 0, 12*len(chunk))
			for _, st := range chunk {
				args = append(args, st.Endpoint, st.Source, string(st.State), st.Since.UnixMilli(), st.Last.Time.UnixMilli(),
					boolInt(st.Last.OK), string(st.Last.Class), st.Last.Errno, st.Last.RTT.Microseconds(), st.Oks, st.Fails, st.Cause)
			}
			q := `INSERT INTO states (endpoint, source, state, since, last_ts, last_ok, last_class, last_errno, last_rtt_us,
				oks, fails, cause) VALUES ` + values(len(chunk), 12) + `
				ON CONFLICT (source, endpoint) DO UPDATE SET state = excluded.state, since = excluded.since,
				last_ts = excluded.last_ts, last_ok = excluded.last_ok, last_class = excluded.last_class,
				last_errno = excluded.last_errno, last_rtt_us = excluded.last_rtt_us, oks = excluded.oks,
				fails = excluded.fails, cause = excluded.cause`
			if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
				return fmt.Errorf("upsert states: %v", err)
			}
		}
		for _, t := range b.Transitions {
			diag, err := diagnosisJSON(t.Diagnosis)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO transitions (endpoint, source, ts, from_state, to_state, class, errno, diagnosis)
				VALUES (?,?,?,?,?,?,?,?)`), t.Endpoint, t.Source, t.Time.UnixMilli(), string(t.From), string(t.To), string(t.Class), t.Errno, diag)
			if err != nil {
				return fmt.Errorf("insert transition of %s: %v", t.Endpoint, err)
			}
		}
		for _, t := range b.Diagnoses {
			diag, err := diagnosisJSON(t.Diagnosis)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, s.q(`UPDATE transitions SET diagnosis = ? WHERE source = ? AND endpoint = ? AND ts = ?`),
				diag, t.Source, t.Endpoint, t.Time.UnixMilli())
			if err != nil {
				return fmt.Errorf("store diagnosis of %s: %v", t.Endpoint, err)
			}
		}
		return nil
	})
}

func diagnosisJSON(d *Diagnosis) (any, error) {
	if d == nil {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode diagnosis: %v", err)
	}
	return string(b), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ms(v int64) time.Time { return time.UnixMilli(v) }

// States returns every stored status, so state and "since" survive restarts.
func (s *Store) States(ctx context.Context) ([]Status, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT endpoint, source, state, since, last_ts, last_ok, last_class,
		last_errno, last_rtt_us, oks, fails, cause FROM states ORDER BY source, endpoint`)
	if err != nil {
		return nil, fmt.Errorf("%w: read states: %v", ErrStore, err)
	}
	defer rows.Close()
	var out []Status
	for rows.Next() {
		var st Status
		var since, lastTS, rtt int64
		var lastOK int
		if err := rows.Scan(&st.Endpoint, &st.Source, &st.State, &since, &lastTS, &lastOK, &st.Last.Class,
			&st.Last.Errno, &rtt, &st.Oks, &st.Fails, &st.Cause); err != nil {
			return nil, fmt.Errorf("%w: read states: %v", ErrStore, err)
		}
		st.Since, st.Last.Time, st.Last.OK, st.Last.RTT = ms(since), ms(lastTS), lastOK == 1, time.Duration(rtt)*time.Microsecond
		st.Last.Endpoint, st.Last.Source = st.Endpoint, st.Source
		out = append(out, st)
	}
	return out, rows.Err()
}

// Transitions returns an endpoint's state changes, newest first.
func (s *Store) Transitions(ctx context.Context, source, endpoint string, limit int) ([]Transition, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, ts, from_state, to_state, class, errno, diagnosis FROM transitions
		WHERE source = ? AND endpoint = ? ORDER BY ts DESC, id DESC LIMIT ?`), source, endpoint, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: read transitions: %v", ErrStore, err)
	}
	defer rows.Close()
	var out []Transition
	for rows.Next() {
		t := Transition{Endpoint: endpoint, Source: source}
		var ts int64
		var diag sql.NullString
		if err := rows.Scan(&t.ID, &ts, &t.From, &t.To, &t.Class, &t.Errno, &diag); err != nil {
			return nil, fmt.Errorf("%w: read transitions: %v", ErrStore, err)
		}
		t.Time = ms(ts)
		if diag.Valid {
			t.Diagnosis = new(Diagnosis)
			if err := json.Unmarshal([]byte(diag.String), t.Diagnosis); err != nil {
				return nil, fmt.Errorf("%w: transition %d has a corrupt diagnosis: %v", ErrStore, t.ID, err)
			}
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Point is one bucket of latency history.
type Point struct {
	Time   time.Time     `json:"time"` // bucket start
	N      int64         `json:"n"`
	OK     int64         `json:"ok"`
	AvgRTT time.Duration `json:"avg_rtt_ns"` // over every probe in the bucket, failed ones too
	MaxRTT time.Duration `json:"max_rtt_ns"`
}

// history is every level of history as one table (source, endpoint, t, n,
// ok_n, rtt_sum, rtt_max), t being a bucket's start or a sample's time. A
// row is in one level only: a fold step adds rows to the next level and
// deletes them in one transaction, and a query reads one snapshot. cond filters each level,
// {t} standing for its time column; args are repeated for each level.
func history(cond string, args ...any) (string, []any) {
	var b strings.Builder
	var all []any
	for i, l := range [...]struct{ table, t, cols string }{
		{"samples", "ts", "1 AS n, ok AS ok_n, rtt_us AS rtt_sum, rtt_us AS rtt_max"},
		{"rollups", "bucket", "n, ok_n, rtt_sum_us AS rtt_sum, rtt_max_us AS rtt_max"},
		{"rollups_hourly", "bucket", "n, ok_n, rtt_sum_us AS rtt_sum, rtt_max_us AS rtt_max"},
	} {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT source, endpoint, %s AS t, %s FROM %s WHERE %s", l.t, l.cols, l.table, strings.ReplaceAll(cond, "{t}", l.t))
		all = append(all, args...)
	}
	return b.String(), all
}

// Latency returns an endpoint's history since a time in buckets of the given
// width (at least RollupWidth, or HourlyWidth past RollupFor, where only
// downsampled data is left). A downsampled bucket counts from its start.
func (s *Store) Latency(ctx context.Context, source, endpoint string, since time.Time, bucket time.Duration) ([]Point, error) {
	w := bucket.Milliseconds()
	if w <= 0 {
		return nil, fmt.Errorf("%w: bucket width %v must be at least 1ms", ErrStore, bucket)
	}
	h, args := history(`source = ? AND endpoint = ? AND {t} >= ?`, source, endpoint, since.UnixMilli())
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT b, CAST(SUM(n) AS BIGINT), CAST(SUM(ok_n) AS BIGINT),
		CAST(SUM(rtt_sum) AS BIGINT), CAST(MAX(rtt_max) AS BIGINT) FROM (
			SELECT (t / ?) * ? AS b, n, ok_n, rtt_sum, rtt_max FROM (`+h+`) h
		) u GROUP BY b ORDER BY b`), append([]any{w, w}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: read latency: %v", ErrStore, err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var b, n, ok, sum, mx int64
		if err := rows.Scan(&b, &n, &ok, &sum, &mx); err != nil {
			return nil, fmt.Errorf("%w: read latency: %v", ErrStore, err)
		}
		p := Point{Time: ms(b), N: n, OK: ok, MaxRTT: time.Duration(mx) * time.Microsecond}
		if n > 0 {
			p.AvgRTT = time.Duration(sum/n) * time.Microsecond
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Uptime is the share of healthy probes in a window.
type Uptime struct {
	OK    int64 `json:"ok"`
	Total int64 `json:"total"`
}

// Percent is 100*OK/Total, or -1 when nothing was probed.
func (u Uptime) Percent() float64 {
	if u.Total == 0 {
		return -1
	}
	return 100 * float64(u.OK) / float64(u.Total)
}

// UptimeKey names one endpoint as seen from one source.
type UptimeKey struct{ Source, Endpoint string }

// Uptimes returns every endpoint's uptime since a time, raw and downsampled
// history together (a downsampled bucket counts from its start).
func (s *Store) Uptimes(ctx context.Context, since time.Time) (map[UptimeKey]Uptime, error) {
	h, args := history(`{t} >= ?`, since.UnixMilli())
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT source, endpoint, CAST(SUM(ok_n) AS BIGINT), CAST(SUM(n) AS BIGINT)
		FROM (`+h+`) u GROUP BY source, endpoint`), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: read uptime: %v", ErrStore, err)
	}
	defer rows.Close()
	out := map[UptimeKey]Uptime{}
	for rows.Next() {
		var k UptimeKey
		var u Uptime
		if err := rows.Scan(&k.Source, &k.Endpoint, &u.OK, &u.Total); err != nil {
			return nil, fmt.Errorf("%w: read uptime: %v", ErrStore, err)
		}
		out[k] = u
	}
	return out, rows.Err()
}

// Uptime returns one endpoint's uptime since a time.
func (s *Store) Uptime(ctx context.Context, source, endpoint string, since time.Time) (Uptime, error) {
	var u Uptime
	h, args := history(`source = ? AND endpoint = ? AND {t} >= ?`, source, endpoint, since.UnixMilli())
	err := s.db.QueryRowContext(ctx, s.q(`SELECT CAST(COALESCE(SUM(ok_n), 0) AS BIGINT), CAST(COALESCE(SUM(n), 0) AS BIGINT)
		FROM (`+h+`) u`), args...).Scan(&u.OK, &u.Total)
	if err != nil {
		return Uptime{}, fmt.Errorf("%w: read uptime: %v", ErrStore, err)
	}
	return u, nil
}

// defaultFoldRows bounds the rows one fold transaction reads: a backlog
// (the first compaction after the upgrade to hourly buckets, or after days
// stopped) is folded in steps of about half a second, so the batch writer,
// waiting for SQLite's one write lock, never reaches its busy timeout.
const defaultFoldRows = 100_000

// fold moves the rows of level from (time column t) older than cut into
// the next level, to, as buckets of width w: cols aggregate a bucket's rows
// as n, ok_n, rtt_sum_us, rtt_max_us. Each step folds the oldest rows (about
// s.foldRows, ending on a bucket boundary) and deletes them in one
// transaction, so an interrupted fold has counted each row exactly once and
// the next carries on. The ON CONFLICT merges into buckets a step made
// before: a bucket split between steps, or samples that arrived late.
//
// Between steps it pauses as long as the step took: SQLite's writer waits
// for the lock by polling, and would never find it free between steps
// that follow each other at once.
func (s *Store) fold(ctx context.Context, from, t, cols, to string, w, cut int64) error {
	for {
		done := false
		start := time.Now()
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var lo, next sql.NullInt64
			if err := tx.QueryRowContext(ctx, s.q(`SELECT MIN(`+t+`) FROM `+from+` WHERE `+t+` < ?`), cut).Scan(&lo); err != nil {
				return fmt.Errorf("downsample %s: %v", from, err)
			}
			if !lo.Valid {
				done = true
				return nil
			}
			err := tx.QueryRowContext(ctx, s.q(`SELECT `+t+` FROM `+from+` WHERE `+t+` < ? ORDER BY `+t+` LIMIT 1 OFFSET ?`),
				cut, s.foldRows).Scan(&next)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("downsample %s: %v", from, err)
			}
			hi := cut
			if next.Valid {
				hi = min(max(next.Int64/w*w, lo.Int64/w*w+w), cut)
			}
			done = hi >= cut
			// PostgreSQL gives each statement of the transaction a new
			// snapshot: a late row committed between an INSERT ... SELECT
			// and a DELETE would be deleted uncounted. One statement that
			// inserts what it deletes has one snapshot. SQLite has no
			// data-modifying WITH, and no such window: one writer at a time.
			rows, del, args := from+` WHERE `+t+` < ?`, "", []any{w, w, hi}
			if s.postgres {
				rows, del, args = `moved`, `WITH moved AS (DELETE FROM `+from+` WHERE `+t+` < ? RETURNING *) `, []any{hi, w, w}
			}
			_, err = tx.ExecContext(ctx, s.q(del+`INSERT INTO `+to+` (source, endpoint, bucket, n, ok_n, rtt_sum_us, rtt_max_us)
				SELECT source, endpoint, (`+t+` / ?) * ?, `+cols+` FROM `+rows+` GROUP BY 1, 2, 3
				ON CONFLICT (source, endpoint, bucket) DO UPDATE SET n = `+to+`.n + excluded.n,
				ok_n = `+to+`.ok_n + excluded.ok_n, rtt_sum_us = `+to+`.rtt_sum_us + excluded.rtt_sum_us,
				rtt_max_us = CASE WHEN excluded.rtt_max_us > `+to+`.rtt_max_us THEN excluded.rtt_max_us ELSE `+to+`.rtt_max_us END`),
				args...)
			if err != nil {
				return fmt.Errorf("downsample %s into %s: %v", from, to, err)
			}
			if s.postgres {
				return nil
			}
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+from+` WHERE `+t+` < ?`), hi); err != nil {
				return fmt.Errorf("downsample %s: %v", from, err)
			}
			return nil
		})
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: downsample %s: %v", ErrStore, from, ctx.Err())
		case <-time.After(time.Since(start)):
		}
	}
}

// Compact downsamples samples older than now-raw into RollupWidth buckets,
// folds those older than now-RollupFor into HourlyWidth buckets, then
// deletes everything older than now-retain. Each step is a transaction that
// leaves every probe counted once (see fold), so Compact may be interrupted
// at any point; run again at the same time, it changes nothing.
func (s *Store) Compact(ctx context.Context, now time.Time, raw, retain time.Duration) error {
	raw = min(raw, retain)
	// Cut on bucket boundaries so a bucket is downsampled whole; hourly
	// buckets take whole 5-minute ones, and never reach into raw samples.
	w, hw := RollupWidth.Milliseconds(), HourlyWidth.Milliseconds()
	cut := now.Add(-raw).UnixMilli() / w * w
	hcut := min(now.Add(-RollupFor).UnixMilli(), cut) / hw * hw
	old := now.Add(-retain).UnixMilli()
	if err := s.fold(ctx, "samples", "ts", "COUNT(*), SUM(ok), SUM(rtt_us), MAX(rtt_us)", "rollups", w, cut); err != nil {
		return err
	}
	if err := s.fold(ctx, "rollups", "bucket", "SUM(n), SUM(ok_n), SUM(rtt_sum_us), MAX(rtt_max_us)", "rollups_hourly", hw, hcut); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		// 5-minute buckets outlive retention when it is shorter than RollupFor.
		for _, q := range []string{`DELETE FROM rollups WHERE bucket < ?`,
			`DELETE FROM rollups_hourly WHERE bucket < ?`, `DELETE FROM transitions WHERE ts < ?`} {
			if _, err := tx.ExecContext(ctx, s.q(q), old); err != nil {
				return fmt.Errorf("retention: %v", err)
			}
		}
		return nil
	})
}

// sampleFrom turns a probe result into a sample.
func sampleFrom(ep Endpoint, source string, at time.Time, r probe.Result) Sample {
	s := Sample{Endpoint: ep.Name, Source: source, Time: at, OK: healthy(ep, r), Class: r.Class, Errno: int(r.Errno), RTT: r.RTT}
	if ep.Layers == nil {
		return s
	}
	layer, cause, detail := r.Layer()
	s.Layer, s.Cause, s.Detail = layer, string(cause), detail
	if r.TLS != nil {
		s.TLS, s.CertExpiry = r.TLS.Handshake, r.TLS.NotAfter
		if r.TLS.Ready && certExpiring(ep, r, at) {
			s.Layer, s.Cause = "tls", "tls-expiring"
			s.Detail = fmt.Sprintf("the certificate expires in %d days (%s), fewer than warn_days %d",
				r.TLS.DaysLeft(at), r.TLS.NotAfter.UTC().Format(time.RFC3339), ep.Layers.WarnDays)
		}
	}
	if r.App != nil {
		s.FirstByte = r.App.FirstByte
	}
	if s.Layer == "tcp" && s.OK {
		s.Detail = "" // the class says it
	}
	return s
}
