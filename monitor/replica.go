package monitor

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// Replicas: several reach watch processes on one PostgreSQL database share
// one fleet. Each accepts agents' reports and serves the dashboard from the
// shared store; the monitor's own endpoints are split between the live
// replicas by rendezvous hashing, so each is probed by one; and the jobs
// that must run once (sending alerts, compacting history) are each held by
// one replica at a time through a lease row.
//
// Why lease rows and not session advisory locks: an advisory lock lives as
// long as its connection, so a replica that hangs (stopped, swapping, cut
// off from its agents but not from the database) keeps its jobs forever,
// and a connection pooler in transaction mode hands the lock to whoever
// gets the connection next. A lease ends at a time the database's own
// clock decides (no clock skew between replicas), shows who holds it and
// since when, and is taken over within two replica intervals of its
// holder's last renewal. What a lease cannot do, stop a paused holder from
// acting once it wakes, the jobs make harmless themselves: alerts are
// claimed row by row (FOR UPDATE SKIP LOCKED) and marked sent in the same
// transaction, and compaction counts every probe once however often it
// runs.

// Jobs held by one replica at a time.
const (
	JobAlerts  = "alerts"  // sends the outbox's alerts
	JobCompact = "compact" // downsamples and drops old history
	JobAgents  = "agents"  // looks for registered agents gone stale (hub.Sweep)
)

var jobs = []string{JobAlerts, JobCompact, JobAgents}

// DefaultReplicaInterval is how often a replica says it lives and renews
// its leases (four times an interval); a replica silent for one interval is
// dead to the others, who take its endpoints and jobs.
const DefaultReplicaInterval = 5 * time.Second

// ReplicaOptions configure Join.
type ReplicaOptions struct {
	// Interval is DefaultReplicaInterval when zero.
	Interval time.Duration
	Logger   *slog.Logger
}

// Replica is this process's place among the monitors sharing a PostgreSQL
// store. Join makes one; Monitor.Run runs it when Options.Replica is set.
type Replica struct {
	store    *Store
	id, host string
	interval time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	live []string        // ids of the live replicas, sorted; this one among them
	held map[string]bool // the jobs this replica holds
}

// ErrReplicaStore is returned by Join and OpenReplica for a store replicas
// cannot share.
var ErrReplicaStore = errors.New("monitor: replicas need a PostgreSQL store")

// OpenReplica opens (and migrates) a PostgreSQL store for one of several
// replicas: it takes the store's lock shared, so replicas run together
// while a monitor that opened it with OpenExclusive is refused (and refuses
// them). SQLite is one process's store: the error says to use PostgreSQL.
func OpenReplica(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if !isPostgres(dsn) {
		return nil, fmt.Errorf("%w: %s is a SQLite file, which keeps one process's history; "+
			"use PostgreSQL for replicas (--store postgres://...)", ErrReplicaStore, dsn)
	}
	s, err := openDB(ctx, dsn)
	if err != nil {
		return nil, err
	}
	s.pgMu.Lock()
	s.dsn, s.shared = dsn, true
	err = s.lockPostgres(ctx, dsn)
	s.pgMu.Unlock()
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Join registers this process as a live replica of store and returns it;
// Run keeps it alive.
func Join(ctx context.Context, store *Store, opt ReplicaOptions) (*Replica, error) {
	if store == nil || !store.postgres {
		return nil, fmt.Errorf("%w: SQLite keeps one process's history; use PostgreSQL for replicas",
			ErrReplicaStore)
	}
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	r := &Replica{store: store, host: host, interval: cmp.Or(opt.Interval, DefaultReplicaInterval),
		log: opt.Logger, held: map[string]bool{}}
	r.id = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	// The first beat may take its time (a loaded database); later ones
	// that take longer than an interval are late anyway, and retried.
	if err := r.beat(ctx, max(r.interval, 30*time.Second)); err != nil {
		return nil, err
	}
	return r, nil
}

// ID names this replica: host/pid/random.
func (r *Replica) ID() string { return r.id }

// Interval is how long a replica may be silent before the others take over.
func (r *Replica) Interval() time.Duration { return r.interval }

// Live returns the ids of the replicas alive at the last heartbeat.
func (r *Replica) Live() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.live)
}

// Holds says whether this replica holds job.
func (r *Replica) Holds(job string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[job]
}

// Owns says whether this replica probes the endpoint name: the live
// replica with the highest hash of (replica, name) does (rendezvous
// hashing), so a replica that dies or joins moves only its share.
func (r *Replica) Owns(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return owner(r.live, name) == r.id
}

// owner is the replica of live that probes name.
func owner(live []string, name string) string {
	best, score := "", uint64(0)
	for _, id := range live {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(name))
		if s := h.Sum64(); best == "" || s > score {
			best, score = id, s
		}
	}
	return best
}

// nowMS is the database's clock in Unix milliseconds: leases and
// heartbeats are judged by one clock, whatever the replicas' say.
const nowMS = `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`

// Run heartbeats and renews or takes leases four times an interval until
// ctx ends; then it gives its leases up and leaves, so the others take
// over at once rather than after an interval.
func (r *Replica) Run(ctx context.Context) {
	t := time.NewTicker(r.interval / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.leave()
			return
		case <-t.C:
		}
		if err := r.beat(ctx, r.interval); err != nil && ctx.Err() == nil {
			r.log.Warn("replica heartbeat failed; this replica's endpoints and jobs go to the others "+
				"if it lasts an interval", "replica", r.id, "interval", r.interval, "err", err)
		}
	}
}

// beat says this replica lives, reads who else does, and renews or takes
// each job's lease. A lease expires 3/4 of an interval after its last renewal.
func (r *Replica) beat(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ttl := r.interval.Milliseconds()
	// A lease lasts three quarters of an interval, renewed every quarter:
	// its holder may miss two renewals, and a dead holder's jobs are
	// taken within an interval of its last renewal, a second to spare
	// for a loaded machine before the two intervals promised.
	leaseTTL := ttl * 3 / 4
	db := r.store.db
	_, err := db.ExecContext(ctx, `INSERT INTO replicas (id, host, pid, started, heartbeat)
		VALUES ($1, $2, $3, `+nowMS+`, `+nowMS+`)
		ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat`, r.id, r.host, os.Getpid())
	if err != nil {
		r.drop()
		return fmt.Errorf("%w: heartbeat: %v", ErrStore, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT id FROM replicas WHERE heartbeat > `+nowMS+` - $1 ORDER BY id`, ttl)
	if err != nil {
		r.drop()
		return fmt.Errorf("%w: read replicas: %v", ErrStore, err)
	}
	var live []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("%w: read replicas: %v", ErrStore, err)
		}
		live = append(live, id)
	}
	rows.Close()
	held := map[string]bool{}
	for _, job := range jobs {
		var holder string
		err := db.QueryRowContext(ctx, `INSERT INTO leases (name, holder, acquired, renewed, expires)
			VALUES ($1, $2, `+nowMS+`, `+nowMS+`, `+nowMS+` + $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, renewed = excluded.renewed,
				expires = excluded.expires,
				acquired = CASE WHEN leases.holder = excluded.holder THEN leases.acquired ELSE excluded.acquired END
			WHERE leases.holder = excluded.holder OR leases.expires < `+nowMS+`
			RETURNING holder`, job, r.id, leaseTTL).Scan(&holder)
		switch {
		case errors.Is(err, sql.ErrNoRows): // another holds it
		case err != nil:
			r.drop()
			return fmt.Errorf("%w: lease %s: %v", ErrStore, job, err)
		default:
			held[job] = true
		}
	}
	r.mu.Lock()
	before := r.held
	r.live, r.held = live, held
	r.mu.Unlock()
	for _, job := range jobs {
		if held[job] && !before[job] {
			r.log.Info("replica took a job", "replica", r.id, "job", job, "live", len(live))
		} else if !held[job] && before[job] {
			r.log.Warn("replica lost a job", "replica", r.id, "job", job)
		}
	}
	return nil
}

// drop gives up every job at once when the database cannot be reached: an
// interval later another replica may hold them.
func (r *Replica) drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = map[string]bool{}
}

// leave releases this replica's leases and its row.
func (r *Replica) leave() {
	r.drop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.store.db.ExecContext(ctx, `DELETE FROM leases WHERE holder = $1`, r.id)
	r.store.db.ExecContext(ctx, `DELETE FROM replicas WHERE id = $1`, r.id)
}

// Lease is who holds a job, as the store says.
type Lease struct {
	Job, Holder                string
	Acquired, Renewed, Expires time.Time
}

// Leases returns the store's leases, for status pages and tests.
func (s *Store) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, holder, acquired, renewed, expires FROM leases ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("%w: read leases: %v", ErrStore, err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var a, rn, e int64
		if err := rows.Scan(&l.Job, &l.Holder, &a, &rn, &e); err != nil {
			return nil, fmt.Errorf("%w: read leases: %v", ErrStore, err)
		}
		l.Acquired, l.Renewed, l.Expires = ms(a), ms(rn), ms(e)
		out = append(out, l)
	}
	return out, rows.Err()
}
