package monitor

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The replicas' write path. Each replica's batch writer folds its samples
// into the shared states in one transaction: the states it touches are
// locked (per source, in one order, so two replicas never deadlock), rise/fall applied
// to what the store holds, not to what this process last saw, and samples,
// states, state changes and their alerts (the outbox) written together. A
// replica that dies mid-batch leaves nothing of it; one that takes over a
// pair carries on from the stored state, so a state change is recorded
// once, by whichever replica saw the sample that made it.

// sharedSample is a sample and, for an agent's, the agent's run and the
// sequence number it gave the result: a result is stored once, whichever
// replica (or how many) it was sent to.
type sharedSample struct {
	Sample
	Target string
	Run    int64
	Seq    uint64
}

// sharedRules are what the writer needs of the monitor: rise and fall, and
// the alert a state change sends (ready: no diagnosis will be added).
type sharedRules struct {
	Rise, Fall int
	Alert      func(t Transition) (a Alert, send, ready bool)
}

// sharedStatus is a status as stored, with its revision.
type sharedStatus struct {
	Status
	Rev int64
}

// sharedResult is what a shared write stored.
type sharedResult struct {
	Statuses    []sharedStatus
	Transitions []Transition // with their ids
	Duplicates  int          // samples already stored (by their agent's sequence numbers)
}

// writeShared stores samples as described above; it retries a transaction
// that PostgreSQL aborted for a deadlock or a serialization failure.
func (s *Store) writeShared(ctx context.Context, samples []sharedSample, rules sharedRules) (
	sharedResult, error) {
	if err := s.keepLock(ctx); err != nil {
		return sharedResult{}, err
	}
	var out sharedResult
	var err error
	for try := 0; try < 5; try++ {
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var e error
			out, e = s.writeSharedTx(ctx, tx, samples, rules)
			return e
		})
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || (pe.Code != "40P01" && pe.Code != "40001") {
			break
		}
	}
	return out, err
}

type stateKey struct{ source, endpoint string }

func (s *Store) writeSharedTx(ctx context.Context, tx *sql.Tx, in []sharedSample, rules sharedRules) (
	sharedResult, error) {
	var out sharedResult
	kept, dups, err := admitSeqs(ctx, tx, in)
	if err != nil {
		return out, err
	}
	out.Duplicates = dups
	if len(kept) == 0 {
		return out, nil
	}
	// Lock the states touched, creating those never seen, in one order.
	targets := map[stateKey]string{}
	for _, sm := range kept {
		targets[stateKey{sm.Source, sm.Endpoint}] = sm.Target
	}
	keys := make([]stateKey, 0, len(targets))
	for k := range targets {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b stateKey) int {
		return cmp.Or(strings.Compare(a.source, b.source), strings.Compare(a.endpoint, b.endpoint))
	})
	srcs, eps, tgts := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		srcs[i], eps[i], tgts[i] = k.source, k.endpoint, targets[k]
	}
	var sources []string
	for _, k := range keys {
		if !slices.Contains(sources, k.source) {
			sources = append(sources, k.source)
		}
	}
	if err := lockSources(ctx, tx, sources); err != nil {
		return out, err
	}
	states, err := readStates(ctx, tx, srcs, eps)
	if err != nil {
		return out, err
	}
	if len(states) < len(keys) {
		// Pairs never seen: create them, then read what was created.
		var ns, ne, nt []string
		for i, k := range keys {
			if states[k] == nil {
				ns, ne, nt = append(ns, srcs[i]), append(ne, eps[i]), append(nt, tgts[i])
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO states (endpoint, source, state, since, last_ts,
			last_ok, last_class, last_errno, last_rtt_us, oks, fails, cause, target)
			SELECT e, s, 'unknown', 0, 0, 0, '', 0, 0, 0, 0, '', t
			FROM unnest($1::text[], $2::text[], $3::text[]) AS k(s, e, t)
			ORDER BY s, e ON CONFLICT (source, endpoint) DO NOTHING`, ns, ne, nt); err != nil {
			return out, fmt.Errorf("create states: %v", err)
		}
		created, err := readStates(ctx, tx, ns, ne)
		if err != nil {
			return out, err
		}
		maps.Copy(states, created)
	}
	before := make(map[stateKey]storedState, len(states))
	for k, st := range states {
		before[k] = *st
	}

	// Rise and fall over the stored state, each pair's samples in time
	// order. A sample older than the pair's last is history only: a newer
	// one already decided the state.
	slices.SortStableFunc(kept, func(a, b sharedSample) int { return a.Time.Compare(b.Time) })
	for _, sm := range kept {
		st := states[stateKey{sm.Source, sm.Endpoint}]
		if st == nil {
			return out, fmt.Errorf("state of %s from %s was not created", sm.Endpoint, sm.Source)
		}
		if sm.Time.Before(st.Last.Time) {
			continue
		}
		if st.State == StateUnknown && st.Since.UnixMilli() == 0 {
			st.Since = sm.Time
		}
		st.Last = sm.Sample
		if sm.OK {
			st.Oks, st.Fails = st.Oks+1, 0
		} else {
			st.Oks, st.Fails = 0, st.Fails+1
		}
		from, to := st.State, st.State
		switch {
		case sm.OK && (from == StateUnknown || from == StateDown && st.Oks >= rules.Rise):
			to = StateUp
		case !sm.OK && from != StateDown && st.Fails >= rules.Fall:
			to = StateDown
		}
		if to != from {
			st.State, st.Since = to, sm.Time
			if to == StateUp {
				st.Cause = ""
			}
			out.Transitions = append(out.Transitions, Transition{Endpoint: sm.Endpoint, Source: sm.Source,
				Time: sm.Time, From: from, To: to, Class: sm.Class, Errno: sm.Errno})
		}
	}

	// History.
	n := len(kept)
	cols := struct {
		ep, src, class     []string
		ts, ok, errno, rtt []int64
	}{make([]string, n), make([]string, n), make([]string, n),
		make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)}
	for i, sm := range kept {
		cols.ep[i], cols.src[i], cols.class[i] = sm.Endpoint, sm.Source, string(sm.Class)
		cols.ts[i], cols.ok[i] = sm.Time.UnixMilli(), int64(boolInt(sm.OK))
		cols.errno[i], cols.rtt[i] = int64(sm.Errno), sm.RTT.Microseconds()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO samples (endpoint, source, ts, ok, class, errno, rtt_us)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::int[], $7::bigint[])`,
		cols.ep, cols.src, cols.ts, cols.ok, cols.class, cols.errno, cols.rtt); err != nil {
		return out, fmt.Errorf("insert samples: %v", err)
	}

	// State changes and, in the same transaction, their alerts, each in one
	// statement: a first sample of every pair (a fleet's start) changes as
	// many states as the batch has pairs, and a round trip per change took
	// the batch seconds. The ids are taken first so each alert knows its own.
	if err := insertTransitions(ctx, tx, out.Transitions, rules); err != nil {
		return out, err
	}

	// Statuses. Every pair's row takes its last sample, but only a change
	// the other replicas must see at once (state, cause, a sample's class)
	// or a last sample older than sharedRefresh takes a new revision: the
	// steady fleet's updates change no indexed column, so PostgreSQL makes
	// them in place (HOT), and the others read a fraction of the rows.
	// Revisions are taken last: the revs row serialises the replicas'
	// commits from here on, so revisions are committed in order and a
	// reader that saw revision r has seen every one below it.
	m := len(keys)
	bump := make([]bool, m)
	bumps := 0
	for i, k := range keys {
		bump[i] = needsRevision(before[k], *states[k])
		bumps += boolInt(bump[i])
	}
	var top int64
	if bumps > 0 {
		if err := tx.QueryRowContext(ctx, `UPDATE revs SET rev = rev + $1 WHERE id = 1 RETURNING rev`,
			bumps).Scan(&top); err != nil {
			return out, fmt.Errorf("take revisions: %v", err)
		}
	}
	up := struct {
		state, class, cause                                       []string
		since, lastTS, lastOK, errno, rtt, oks, fails, rev, revTS []int64
	}{make([]string, m), make([]string, m), make([]string, m), make([]int64, m), make([]int64, m),
		make([]int64, m), make([]int64, m), make([]int64, m), make([]int64, m), make([]int64, m),
		make([]int64, m), make([]int64, m)}
	next := top - int64(bumps)
	for i, k := range keys {
		st := states[k]
		if bump[i] {
			next++
			st.Rev, st.RevTS = next, st.Last.Time.UnixMilli()
		}
		up.state[i], up.class[i], up.cause[i] = string(st.State), string(st.Last.Class), st.Cause
		up.since[i], up.lastTS[i], up.lastOK[i] = st.Since.UnixMilli(), st.Last.Time.UnixMilli(), int64(boolInt(st.Last.OK))
		up.errno[i], up.rtt[i], up.oks[i], up.fails[i] = int64(st.Last.Errno), st.Last.RTT.Microseconds(),
			int64(st.Oks), int64(st.Fails)
		up.rev[i], up.revTS[i] = st.Rev, st.RevTS
		out.Statuses = append(out.Statuses, sharedStatus{Status: st.Status, Rev: st.Rev})
	}
	if _, err := tx.ExecContext(ctx, `UPDATE states SET state = v.state, since = v.since, last_ts = v.last_ts,
		last_ok = v.last_ok, last_class = v.class, last_errno = v.errno, last_rtt_us = v.rtt, oks = v.oks,
		fails = v.fails, cause = v.cause, rev = v.rev, rev_ts = v.rev_ts
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::text[],
			$8::int[], $9::bigint[], $10::int[], $11::int[], $12::text[], $13::bigint[], $14::bigint[])
			AS v(source, endpoint, state, since, last_ts, last_ok, class, errno, rtt, oks, fails, cause, rev, rev_ts)
		WHERE states.source = v.source AND states.endpoint = v.endpoint`,
		srcs, eps, up.state, up.since, up.lastTS, up.lastOK, up.class, up.errno, up.rtt, up.oks, up.fails,
		up.cause, up.rev, up.revTS); err != nil {
		return out, fmt.Errorf("update states: %v", err)
	}
	return out, nil
}

// sharedRefresh is how late another replica may show a pair's last sample
// when nothing else of it changed.
const sharedRefresh = 30 * time.Second

// storedState is a status as the states table holds it: its revision, and
// the time of the last sample that revision carried.
type storedState struct {
	Status
	Rev, RevTS int64
}

// needsRevision says whether a status written over was must take a new
// revision: the other replicas must see the change at once, or their copy
// of its last sample is sharedRefresh old.
func needsRevision(was, now storedState) bool {
	return was.Rev == 0 || now.State != was.State || !now.Since.Equal(was.Since) || now.Cause != was.Cause ||
		now.Last.OK != was.Last.OK || now.Last.Class != was.Last.Class || now.Last.Errno != was.Last.Errno ||
		now.Last.Time.UnixMilli()-was.RevTS >= sharedRefresh.Milliseconds()
}

// readStates reads the stored states of the pairs (srcs[i], eps[i]).
func readStates(ctx context.Context, tx *sql.Tx, srcs, eps []string) (map[stateKey]*storedState, error) {
	rows, err := tx.QueryContext(ctx, `SELECT st.endpoint, st.source, st.state, st.since, st.last_ts,
		st.last_ok, st.last_class, st.last_errno, st.last_rtt_us, st.oks, st.fails, st.cause, st.target,
		st.rev, st.rev_ts
		FROM states st JOIN unnest($1::text[], $2::text[]) AS k(s, e) ON st.source = k.s AND st.endpoint = k.e`,
		srcs, eps)
	if err != nil {
		return nil, fmt.Errorf("read states: %v", err)
	}
	defer rows.Close()
	states := make(map[stateKey]*storedState, len(srcs))
	for rows.Next() {
		var ss storedState
		st, err := scanStatus(rows, true, &ss.Rev, &ss.RevTS)
		if err != nil {
			return nil, fmt.Errorf("read states: %v", err)
		}
		ss.Status = st
		states[stateKey{st.Source, st.Endpoint}] = &ss
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read states: %v", err)
	}
	return states, nil
}

// lockSources takes, to the end of tx, the lock that every writer of the
// sources' states holds (writeSharedTx, recordDiagnosis): one transaction
// advisory lock per source, not a row lock per state, which PostgreSQL
// writes into every row (a WAL record each, 5,000 a batch, and then the
// update writes the row again). Keys are taken in one order, so two
// replicas never deadlock; the schema is in the key, so two fleets on one
// database do not wait on each other (a hash collision only waits).
func lockSources(ctx context.Context, tx *sql.Tx, sources []string) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT
		hashtextextended(current_schema() || '/' || s, 0) AS k FROM unnest($1::text[]) AS s) l
		ORDER BY k`, sources); err != nil {
		return fmt.Errorf("lock the states of %d sources: %v", len(sources), err)
	}
	return nil
}

// insertTransitions stores state changes, setting their ids, and queues
// the alerts rules.Alert says to send, in three statements whatever their
// number.
func insertTransitions(ctx context.Context, tx *sql.Tx, ts []Transition, rules sharedRules) error {
	if len(ts) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT nextval(pg_get_serial_sequence('transitions', 'id'))
		FROM generate_series(1, $1)`, len(ts))
	if err != nil {
		return fmt.Errorf("take transition ids: %v", err)
	}
	ids := make([]int64, 0, len(ts))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("take transition ids: %v", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("take transition ids: %v", err)
	}
	if len(ids) != len(ts) {
		return fmt.Errorf("take transition ids: got %d for %d state changes", len(ids), len(ts))
	}
	n := len(ts)
	eps, srcs, from, to, class := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n)
	tss, errnos := make([]int64, n), make([]int64, n)
	var oIDs, oReady []int64
	var oBody []string
	for i := range ts {
		t := &ts[i]
		t.ID = ids[i]
		eps[i], srcs[i], from[i], to[i], class[i] = t.Endpoint, t.Source, string(t.From), string(t.To),
			string(t.Class)
		tss[i], errnos[i] = t.Time.UnixMilli(), int64(t.Errno)
		if rules.Alert == nil {
			continue
		}
		a, send, ready := rules.Alert(*t)
		t.Change = a.Change
		if !send {
			continue
		}
		body, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode alert: %v", err)
		}
		oIDs, oReady, oBody = append(oIDs, t.ID), append(oReady, int64(boolInt(ready))), append(oBody, string(body))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO transitions (id, endpoint, source, ts, from_state, to_state,
		class, errno) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[],
		$6::text[], $7::text[], $8::int[])`, ids, eps, srcs, tss, from, to, class, errnos); err != nil {
		return fmt.Errorf("insert %d state changes: %v", n, err)
	}
	if len(oIDs) == 0 {
		return nil
	}
	// Queued in the order of their state changes: the sender goes by id.
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (transition_id, created, ready, alert)
		SELECT t, `+nowMS+`, r, a FROM unnest($1::bigint[], $2::int[], $3::text[]) WITH ORDINALITY
		AS v(t, r, a, o) ORDER BY o`, oIDs, oReady, oBody); err != nil {
		return fmt.Errorf("queue %d alerts: %v", len(oIDs), err)
	}
	return nil
}

// admitSeqs drops the agents' results the store already has: per agent, a
// run older than the stored one, or a sequence number below the stored
// next of the same run. It advances each agent's row, locked in one order.
func admitSeqs(ctx context.Context, tx *sql.Tx, in []sharedSample) (kept []sharedSample, dups int, err error) {
	var agents []string
	for _, sm := range in {
		if sm.Seq != 0 && !slices.Contains(agents, sm.Source) {
			agents = append(agents, sm.Source)
		}
	}
	if len(agents) == 0 {
		return in, 0, nil
	}
	slices.Sort(agents)
	if _, err := tx.ExecContext(ctx, `INSERT INTO agent_seqs (agent, run, next)
		SELECT a, 0, 0 FROM unnest($1::text[]) AS a ORDER BY a ON CONFLICT (agent) DO NOTHING`, agents); err != nil {
		return nil, 0, fmt.Errorf("create agent sequences: %v", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT agent, run, next FROM agent_seqs WHERE agent = ANY($1)
		ORDER BY agent FOR UPDATE`, agents)
	if err != nil {
		return nil, 0, fmt.Errorf("lock agent sequences: %v", err)
	}
	type seq struct{ run, next int64 }
	seqs := map[string]*seq{}
	for rows.Next() {
		var a string
		var s seq
		if err := rows.Scan(&a, &s.run, &s.next); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("lock agent sequences: %v", err)
		}
		seqs[a] = &s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("lock agent sequences: %v", err)
	}
	// Each agent's results in its order, so a batch and its resend in one
	// write keep the first.
	order := slices.Clone(in)
	slices.SortStableFunc(order, func(a, b sharedSample) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), cmp.Compare(a.Run, b.Run), cmp.Compare(a.Seq, b.Seq))
	})
	for _, sm := range order {
		s := seqs[sm.Source]
		if sm.Seq == 0 || s == nil {
			kept = append(kept, sm)
			continue
		}
		switch {
		case sm.Run < s.run, sm.Run == s.run && int64(sm.Seq) < s.next:
			dups++
			continue
		case sm.Run > s.run:
			s.run, s.next = sm.Run, 0
		}
		s.next = int64(sm.Seq) + 1
		kept = append(kept, sm)
	}
	runs, nexts := make([]int64, len(agents)), make([]int64, len(agents))
	for i, a := range agents {
		runs[i], nexts[i] = seqs[a].run, seqs[a].next
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agent_seqs SET run = v.run, next = v.next, seen = `+nowMS+`
		FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(agent, run, next)
		WHERE agent_seqs.agent = v.agent`, agents, runs, nexts); err != nil {
		return nil, 0, fmt.Errorf("advance agent sequences: %v", err)
	}
	return kept, dups, nil
}

// AgentsSeen returns when each agent's results last reached any replica
// (the database's clock).
func (s *Store) AgentsSeen(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT agent, seen FROM agent_seqs WHERE seen > 0`)
	if err != nil {
		return nil, fmt.Errorf("%w: read agents seen: %v", ErrStore, err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var a string
		var seen int64
		if err := rows.Scan(&a, &seen); err != nil {
			return nil, fmt.Errorf("%w: read agents seen: %v", ErrStore, err)
		}
		out[a] = ms(seen)
	}
	return out, rows.Err()
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// scanStatus reads the states columns, and target when withTarget.
func scanStatus(r rowScanner, withTarget bool, extra ...any) (Status, error) {
	var st Status
	var since, lastTS, rtt int64
	var lastOK int
	dest := []any{&st.Endpoint, &st.Source, &st.State, &since, &lastTS, &lastOK, &st.Last.Class,
		&st.Last.Errno, &rtt, &st.Oks, &st.Fails, &st.Cause}
	if withTarget {
		dest = append(dest, &st.Target)
	}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return st, err
	}
	st.Since, st.Last.Time, st.Last.OK, st.Last.RTT = ms(since), ms(lastTS), lastOK == 1, time.Duration(rtt)*time.Microsecond
	st.Last.Endpoint, st.Last.Source = st.Endpoint, st.Source
	if lastTS == 0 {
		st.Last = Sample{}
	}
	return st, nil
}

// statesSince returns the statuses stored with a revision above rev, in
// revision order.
func (s *Store) statesSince(ctx context.Context, rev int64) ([]sharedStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT endpoint, source, state, since, last_ts, last_ok, last_class,
		last_errno, last_rtt_us, oks, fails, cause, target, rev FROM states WHERE rev > $1 ORDER BY rev`, rev)
	if err != nil {
		return nil, fmt.Errorf("%w: read states: %v", ErrStore, err)
	}
	defer rows.Close()
	var out []sharedStatus
	for rows.Next() {
		var ss sharedStatus
		st, err := scanStatus(rows, true, &ss.Rev)
		if err != nil {
			return nil, fmt.Errorf("%w: read states: %v", ErrStore, err)
		}
		ss.Status = st
		out = append(out, ss)
	}
	return out, rows.Err()
}

// recordDiagnosis attaches a diagnosis to a stored state change, sets the
// cause of the status while it is still that change's, and completes its
// queued alert. It returns the status's new revision (0 when the status
// moved on).
func (s *Store) recordDiagnosis(ctx context.Context, t Transition, a Alert) (int64, error) {
	diag, err := diagnosisJSON(t.Diagnosis)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(a)
	if err != nil {
		return 0, fmt.Errorf("%w: encode alert: %v", ErrStore, err)
	}
	var rev int64
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := lockSources(ctx, tx, []string{t.Source}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE transitions SET diagnosis = $1 WHERE id = $2`, diag, t.ID); err != nil {
			return fmt.Errorf("store diagnosis of %s: %v", t.Endpoint, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET alert = $1, ready = 1 WHERE transition_id = $2
			AND sent IS NULL`, string(body), t.ID); err != nil {
			return fmt.Errorf("complete alert of %s: %v", t.Endpoint, err)
		}
		var state string
		var since int64
		err := tx.QueryRowContext(ctx, `SELECT state, since FROM states WHERE source = $1 AND endpoint = $2
			FOR UPDATE`, t.Source, t.Endpoint).Scan(&state, &since)
		if err != nil || state != string(StateDown) || since != t.Time.UnixMilli() || t.Diagnosis == nil {
			return nil // moved on: the cause is no longer this change's
		}
		if err := tx.QueryRowContext(ctx, `UPDATE revs SET rev = rev + 1 WHERE id = 1 RETURNING rev`).Scan(&rev); err != nil {
			return fmt.Errorf("take revision: %v", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE states SET cause = $1, rev = $2 WHERE source = $3 AND endpoint = $4`,
			t.Diagnosis.Cause, rev, t.Source, t.Endpoint)
		return err
	})
	return rev, err
}

// Deliverer sends an alert and returns once it was delivered, or failed for
// good; Webhook is one. The replica that holds JobAlerts delivers each
// queued alert through it and marks it sent in the same transaction.
type Deliverer interface {
	Deliver(ctx context.Context, a Alert) error
}

// sendQueued delivers the queued alerts, oldest first, each claimed and
// marked sent in a transaction of its own: a replica that dies before the
// mark leaves the alert to the next holder, and no two replicas claim the
// same one. An alert whose diagnosis has not come within readyAfter (its
// replica died while asking the doctor) goes without. It stops at the first
// failure and says how many it sent.
func (s *Store) sendQueued(ctx context.Context, by string, d Deliverer, readyAfter time.Duration,
	still func() bool) (int, error) {
	sent := 0
	for still() {
		done := false
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var id int64
			var body string
			err := tx.QueryRowContext(ctx, `SELECT id, alert FROM outbox WHERE sent IS NULL
				AND (ready = 1 OR created < `+nowMS+` - $1) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
				readyAfter.Milliseconds()).Scan(&id, &body)
			if errors.Is(err, sql.ErrNoRows) {
				done = true
				return nil
			}
			if err != nil {
				return fmt.Errorf("claim alert: %v", err)
			}
			var a Alert
			if err := json.Unmarshal([]byte(body), &a); err != nil {
				return fmt.Errorf("queued alert %d is corrupt: %v", id, err)
			}
			a.ID = id
			if err := d.Deliver(ctx, a); err != nil {
				return fmt.Errorf("deliver alert %d (%s %s): %w", id, a.Endpoint, a.State, err)
			}
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET sent = `+nowMS+`, sent_by = $1 WHERE id = $2`, by, id)
			return err
		})
		if err != nil {
			return sent, err
		}
		if done {
			return sent, nil
		}
		sent++
	}
	return sent, nil
}
