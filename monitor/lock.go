package monitor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/reach-tools/reach/internal/sys"
)

// ErrInUse marks a store that another process already writes to.
var ErrInUse = errors.New("monitor: store in use")

// InUseError says which process holds the store.
type InUseError struct {
	Store    string // the SQLite file, or the PostgreSQL DSN without its password
	PID      int    // the holder's process id (on its host), 0 when unknown
	Detail   string // what else is known of the holder, e.g. since when
	Postgres bool
	Replica  bool // a replica was refused: a monitor holds the store alone
}

func (e *InUseError) Error() string {
	who := "another process"
	var about []string
	if e.PID > 0 {
		who, about = "another reach", append(about, "pid "+strconv.Itoa(e.PID))
	}
	if e.Detail != "" {
		about = append(about, e.Detail)
	}
	if len(about) > 0 {
		who += " (" + strings.Join(about, ", ") + ")"
	}
	if e.Replica {
		return fmt.Sprintf("monitor: store %s is in use by %s, which runs alone (not as a replica): "+
			"restart it with --replica to share the store, or give this one a store of its own", e.Store, who)
	}
	msg := fmt.Sprintf("monitor: store %s is in use by %s: two monitors on one store would store every "+
		"sample twice; stop that one, or give this one a store of its own", e.Store, who)
	if e.Postgres {
		msg += " (another database, or schema with search_path=); to run several hubs on one " +
			"database, start every one as a replica (reach watch --replica; it may be replicas " +
			"that hold it)"
	} else {
		msg += ". SQLite keeps one process's history: use PostgreSQL for replicas " +
			"(reach watch --replica --store postgres://...)"
	}
	return msg
}

func (e *InUseError) Unwrap() error { return ErrInUse }

// OpenExclusive opens (and migrates) a store that this process alone writes
// to, until Close: a second monitor on the same database would store every
// sample twice, so it gets an *InUseError naming the first (errors.Is
// ErrInUse).
//
// SQLite: the file PATH.lock holds the owner's pid, under a lock the kernel
// drops when the owner ends however it ends (kill -9 too), so it is never
// stale; a pid left in it by such an end is logged and taken over.
// PostgreSQL: an advisory lock, one per schema (search_path), held by a
// connection of its own; the server drops it with that connection.
func OpenExclusive(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lock *os.File
	if !isPostgres(dsn) && dsn != "" {
		var err error
		if lock, err = lockFile(dsn, log); err != nil {
			return nil, err
		}
	}
	s, err := openDB(ctx, dsn)
	if err != nil {
		unlockFile(lock)
		return nil, err
	}
	s.lock = lock
	if s.postgres {
		s.pgMu.Lock()
		s.dsn = dsn
		err := s.lockPostgres(ctx, dsn)
		s.pgMu.Unlock()
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

var lockPID = regexp.MustCompile(`(?m)^pid (\d+)$`)

// lockFile takes path.lock and writes this process's pid in it.
func lockFile(path string, log *slog.Logger) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w: lock file: %v", ErrStore, err)
	}
	locked := sys.TryLock(f)
	// What the owner wrote: the holder's pid, or that of one that ended
	// without clearing it. Bounded: the file holds two short lines.
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	prev, since := 0, ""
	if m := lockPID.FindSubmatch(b); m != nil {
		prev, _ = strconv.Atoi(string(m[1]))
	}
	if _, rest, ok := strings.Cut(string(b), "since "); ok {
		since, _, _ = strings.Cut(rest, "\n")
	}
	if locked != nil {
		f.Close()
		if errors.Is(locked, sys.ErrLocked) {
			e := &InUseError{Store: path, PID: prev}
			if since != "" {
				e.Detail = "since " + since
			}
			return nil, e
		}
		return nil, fmt.Errorf("%w: %v", ErrStore, locked)
	}
	if prev != 0 {
		log.Warn("store: took over the lock of a process that ended without releasing it "+
			"(killed, or its host crashed)", "lock", name, "pid", prev, "since", since)
	}
	mine := fmt.Sprintf("pid %d\nsince %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	if err = f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(mine), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: lock file: %v", ErrStore, err)
	}
	return f, nil
}

// unlockFile empties the lock file (this owner ended cleanly) and drops
// the lock. The file stays: removing it would let a process that opened it
// just before lock the removed file while a third locks a new one.
func unlockFile(f *os.File) {
	if f == nil {
		return
	}
	f.Truncate(0)
	f.Close()
}

// pgLockClass is the first key of the advisory lock ("reac"); the second
// is a hash of the schema, so stores in other schemas of one database do
// not exclude each other.
const pgLockClass = 0x72656163

// lockPostgres takes the advisory lock on a connection kept for it, and
// names this process in that connection's application_name, which the
// next one reads to say who holds it. s.pgMu is held.
func (s *Store) lockPostgres(ctx context.Context, dsn string) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%w: lock: %v", ErrStore, err)
	}
	var schema string
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&schema); err != nil {
		conn.Close()
		return fmt.Errorf("%w: lock: %v", ErrStore, err)
	}
	h := fnv.New32a()
	h.Write([]byte(schema))
	key := int32(h.Sum32())
	var ok bool
	// Replicas take it shared: they run together, and exclude (and are
	// excluded by) a monitor that takes it alone.
	try := `SELECT pg_try_advisory_lock($1, $2)`
	if s.shared {
		try = `SELECT pg_try_advisory_lock_shared($1, $2)`
	}
	if err := conn.QueryRowContext(ctx, try, int32(pgLockClass), key).Scan(&ok); err != nil {
		conn.Close()
		return fmt.Errorf("%w: lock: %v", ErrStore, err)
	}
	if !ok {
		conn.Close()
		e := &InUseError{Store: Redact(dsn), Postgres: true, Detail: "schema " + schema, Replica: s.shared}
		var app, addr sql.NullString
		err := s.db.QueryRowContext(ctx, `SELECT a.application_name, host(a.client_addr) FROM pg_locks l
			JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 2`,
			int64(pgLockClass), int64(uint32(key))).Scan(&app, &addr)
		if err == nil {
			if m := appPID.FindStringSubmatch(app.String); m != nil {
				e.PID, _ = strconv.Atoi(m[1])
			}
			if addr.Valid {
				e.Detail += ", connected from " + addr.String
			}
		}
		return e
	}
	host, _ := os.Hostname()
	_, err = conn.ExecContext(ctx, `SELECT set_config('application_name', $1, false)`,
		fmt.Sprintf("reach pid %d on %s", os.Getpid(), host))
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w: lock: %v", ErrStore, err)
	}
	s.pgLock = conn
	return nil
}

// keepLock makes sure, before a write, that the session holding the
// PostgreSQL lock is alive: a server restart or a cut connection ends it,
// and the lock with it, and another process may have taken it since. It
// takes the lock again, or fails the write with an *InUseError: two
// writers never store the same samples.
func (s *Store) keepLock(ctx context.Context) error {
	s.pgMu.Lock()
	defer s.pgMu.Unlock()
	if s.dsn == "" { // not opened by OpenExclusive, or not PostgreSQL
		return nil
	}
	if s.pgLock != nil {
		if err := s.pgLock.PingContext(ctx); err == nil {
			return nil
		}
		s.pgLock.Close()
		s.pgLock = nil
	}
	return s.lockPostgres(ctx, s.dsn)
}

var appPID = regexp.MustCompile(`^reach pid (\d+)`)
