package monitor

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AgentRecord is one agent that registered with a hub, as the store keeps
// it: the hub's own encoding of what the agent announced, under its name
// and run (when it started; a later run replaces an earlier one).
type AgentRecord struct {
	Name string
	Run  int64
	Data []byte
}

// PutAgent keeps r, unless the store holds a later run of that agent; ok
// says whether it did.
func (s *Store) PutAgent(ctx context.Context, r AgentRecord) (ok bool, err error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO agents (name, run, updated, registration)
		VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET run = excluded.run,
		updated = excluded.updated, registration = excluded.registration
		WHERE agents.run <= excluded.run`), r.Name, r.Run, time.Now().UnixMilli(), string(r.Data))
	if err != nil {
		return false, fmt.Errorf("%w: keep agent %s: %v", ErrStore, r.Name, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// DeleteAgent forgets agent name, unless the store holds a later run than
// run; ok says whether it did.
func (s *Store) DeleteAgent(ctx context.Context, name string, run int64) (ok bool, err error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM agents WHERE name = ? AND run <= ?`), name, run)
	if err != nil {
		return false, fmt.Errorf("%w: forget agent %s: %v", ErrStore, name, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Agents returns every agent record, by name.
func (s *Store) Agents(ctx context.Context) ([]AgentRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, run, registration FROM agents ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("%w: read agents: %v", ErrStore, err)
	}
	defer rows.Close()
	var out []AgentRecord
	for rows.Next() {
		var r AgentRecord
		var data sql.NullString
		if err := rows.Scan(&r.Name, &r.Run, &data); err != nil {
			return nil, fmt.Errorf("%w: read agents: %v", ErrStore, err)
		}
		r.Data = []byte(data.String)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read agents: %v", ErrStore, err)
	}
	return out, nil
}
