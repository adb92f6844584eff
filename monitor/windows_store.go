package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// apiWindowPrefix starts the id of a window made through the API; the
// rest is its row's id in the store.
const apiWindowPrefix = "api-"

// PutWindow keeps a one-off window made through the API and returns it
// with its id, which is the store's: unique across replicas and restarts.
func (s *Store) PutWindow(ctx context.Context, w Window) (Window, error) {
	eps, err := json.Marshal(w.Endpoints)
	if err != nil {
		return Window{}, fmt.Errorf("%w: keep window: %v", ErrStore, err)
	}
	if w.Endpoints == nil {
		eps = []byte("[]")
	}
	var id int64
	err = s.db.QueryRowContext(ctx, s.q(`INSERT INTO windows (start_ms, end_ms, endpoints, reason, created)
		VALUES (?, ?, ?, ?, ?) RETURNING id`), w.Start.UnixMilli(), w.End.UnixMilli(), string(eps), w.Reason,
		time.Now().UnixMilli()).Scan(&id)
	if err != nil {
		return Window{}, fmt.Errorf("%w: keep window: %v", ErrStore, err)
	}
	w.ID, w.From, w.For, w.Days, w.At, w.Zone = apiWindowPrefix+strconv.FormatInt(id, 10), WindowAPI, 0, nil, 0, nil
	w.Start, w.End = time.UnixMilli(w.Start.UnixMilli()), time.UnixMilli(w.End.UnixMilli())
	return w, nil
}

// DeleteWindow forgets the API's window id; ok says whether the store held
// it.
func (s *Store) DeleteWindow(ctx context.Context, id string) (ok bool, err error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, apiWindowPrefix), 10, 64)
	if err != nil || !strings.HasPrefix(id, apiWindowPrefix) {
		return false, nil
	}
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM windows WHERE id = ?`), n)
	if err != nil {
		return false, fmt.Errorf("%w: forget window %s: %v", ErrStore, id, err)
	}
	rows, err := res.RowsAffected()
	return rows > 0, err
}

// Windows returns the API's windows that end after now, oldest first.
func (s *Store) Windows(ctx context.Context, now time.Time) ([]Window, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, start_ms, end_ms, endpoints, reason FROM windows
		WHERE end_ms > ? ORDER BY id`), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("%w: read windows: %v", ErrStore, err)
	}
	defer rows.Close()
	var out []Window
	for rows.Next() {
		var id, start, end int64
		var eps string
		w := Window{From: WindowAPI}
		if err := rows.Scan(&id, &start, &end, &eps, &w.Reason); err != nil {
			return nil, fmt.Errorf("%w: read windows: %v", ErrStore, err)
		}
		if err := json.Unmarshal([]byte(eps), &w.Endpoints); err != nil {
			return nil, fmt.Errorf("%w: read window %d's endpoints %q: %v", ErrStore, id, eps, err)
		}
		if len(w.Endpoints) == 0 {
			w.Endpoints = nil
		}
		w.ID, w.Start, w.End = apiWindowPrefix+strconv.FormatInt(id, 10), time.UnixMilli(start), time.UnixMilli(end)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read windows: %v", ErrStore, err)
	}
	return out, nil
}

// PruneWindows deletes the API's windows that ended at or before t; n is
// how many.
func (s *Store) PruneWindows(ctx context.Context, t time.Time) (n int64, err error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM windows WHERE end_ms <= ?`), t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("%w: prune windows: %v", ErrStore, err)
	}
	return res.RowsAffected()
}
