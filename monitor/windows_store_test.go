package monitor

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testdb"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

func downAlert(name string, at time.Time) Alert {
	return Alert{Endpoint: name, Source: LocalSource, State: StateDown, Time: at, Class: probe.Refused}
}

func windowIDs(vs []WindowView) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

// A window posted to replica A (its Alerting on its own connection to the
// PostgreSQL store) holds the alert that replica B, the one sending
// alerts, decides next; both list it, and B deleting it ends it for A.
func TestWindowPostedToOneReplicaHoldsAnother(t *testing.T) {
	dsn := testdb.PostgresSchema(t)
	ctx := t.Context()
	cfg := &Config{Alerts: Alerts{Rise: 1, Fall: 1}}
	open := func() (*Alerting, *recorder) {
		s, err := OpenReplica(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		rec := &recorder{}
		al := NewAlerting(cfg, nil, rec)
		if err := al.UseStore(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
		return al, rec
	}
	a, _ := open()
	b, sentB := open()
	now := time.Now()
	w, err := a.AddWindow(Window{Endpoints: []string{"db"}, Start: now.Add(-time.Minute), End: now.Add(time.Hour), Reason: "upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	for name, al := range map[string]*Alerting{"a": a, "b": b} {
		if got := windowIDs(al.Windows()); !slices.Equal(got, []string{w.ID}) {
			t.Errorf("replica %s lists windows %v, want [%s]", name, got, w.ID)
		}
	}
	// B decides at once after A's answer: no refresh of B's in between.
	if err := b.Deliver(ctx, downAlert("db", now)); err != nil {
		t.Fatal(err)
	}
	if err := b.Deliver(ctx, downAlert("web", now)); err != nil {
		t.Fatal(err)
	}
	got := sentB.snapshot()
	if len(got) != 1 || got[0].Endpoint != "web" || got[0].Kind != AlertFiring {
		t.Fatalf("B sent %+v; want web's down alert only (db is in A's window)", got)
	}
	if h := b.Held(LocalSource, "db"); h != "maintenance "+w.ID {
		t.Errorf("B says db is held by %q", h)
	}
	if err := b.RemoveWindow(w.ID); err != nil {
		t.Fatal(err)
	}
	if got := a.Windows(); len(got) != 0 {
		t.Errorf("A still lists %v after B removed it", windowIDs(got))
	}
	if err := a.RemoveWindow(w.ID); !errors.Is(err, ErrNoWindow) {
		t.Errorf("removing it again: %v, want ErrNoWindow", err)
	}
}

// A window made through the API survives a restart on SQLite, and holds
// the restarted process's alerts; expired ones are pruned.
func TestWindowSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reach.db")
	ctx := t.Context()
	cfg := &Config{Alerts: Alerts{Rise: 1, Fall: 1}}
	now := time.Now()
	s := openTestStore(t, path)
	al := NewAlerting(cfg, nil)
	if err := al.UseStore(ctx, s, nil); err != nil {
		t.Fatal(err)
	}
	w, err := al.AddWindow(Window{Start: now.Add(-time.Minute), End: now.Add(time.Hour), Reason: "move racks"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutWindow(ctx, Window{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTestStore(t, path)
	rec := &recorder{}
	al = NewAlerting(cfg, nil, rec)
	if err := al.UseStore(ctx, s, nil); err != nil {
		t.Fatal(err)
	}
	vs := al.Windows()
	if len(vs) != 1 || vs[0].ID != w.ID || vs[0].Reason != "move racks" || !vs[0].Active || vs[0].From != WindowAPI {
		t.Fatalf("after a restart: %+v; want %s, active", vs, w.ID)
	}
	al.Notify(downAlert("db", now))
	if got := rec.snapshot(); len(got) != 0 {
		t.Fatalf("an alert went out during the window: %+v", got)
	}
	if n, err := s.PruneWindows(ctx, now); err != nil || n != 1 {
		t.Errorf("pruned %d windows, %v; want the expired one", n, err)
	}
	if err := al.RemoveWindow(w.ID); err != nil {
		t.Fatal(err)
	}
	// The window ended: db, still down, is announced at the next tick.
	if err := al.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	al.mu.Lock()
	out := al.a.Tick(time.Now())
	al.mu.Unlock()
	if len(out) != 1 || out[0].Endpoint != "db" || out[0].Kind != AlertFiring {
		t.Fatalf("after the window: %+v", out)
	}
	if err := al.RemoveWindow("nightly"); !errors.Is(err, ErrNoWindow) {
		t.Errorf("removing an unknown window: %v", err)
	}
}

// The same through running replicas (in-process, one PostgreSQL schema):
// a window posted to the replica that does not hold the alerts' lease
// holds db:5432's alert, which the holder sends from the shared outbox,
// while cache:6379's, outside it, goes out.
func TestReplicaWindowHoldsOutbox(t *testing.T) {
	dsn := testdb.PostgresSchema(t)
	cfg := &Config{Alerts: Alerts{Rise: 1, Fall: 1}}
	type replica struct {
		tr   *testReplica
		al   *Alerting
		sent *recorder
	}
	start := func() replica {
		rec := &recorder{}
		al := NewAlerting(cfg, nil, rec)
		tr := startReplica(t, dsn, cfg, al, 2*time.Second)
		if err := al.UseStore(t.Context(), tr.m.Store(), nil); err != nil {
			t.Fatal(err)
		}
		return replica{tr, al, rec}
	}
	a, b := start(), start()
	testnet.Eventually(t, 20*time.Second, "the alerts held by exactly one of two live replicas", func() bool {
		return len(a.tr.r.Live()) == 2 && len(b.tr.r.Live()) == 2 && a.tr.r.Holds(JobAlerts) != b.tr.r.Holds(JobAlerts)
	})
	if a.tr.r.Holds(JobAlerts) {
		a, b = b, a // a: not holding; b: holding
	}
	now := time.Now()
	w, err := a.al.AddWindow(Window{Endpoints: []string{"db:5432"}, Start: now.Add(-time.Hour), End: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := now.Add(-time.Minute).Truncate(time.Millisecond)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	cache := func(seq uint64, ok bool, t time.Time) Report {
		r := report(seq, ok, t)
		r.Endpoint.Name, r.Endpoint.Target.Port = "cache:6379", 6379
		return r
	}
	if err := a.tr.m.Ingest(t.Context(), "web", []Report{report(1, true, at(1)), cache(2, true, at(1)),
		report(3, false, at(2)), cache(4, false, at(2))}); err != nil {
		t.Fatal(err)
	}
	// The holder sends from the outbox in order: db's decision came first.
	testnet.Eventually(t, 20*time.Second, "cache's alert sent", func() bool {
		return slices.ContainsFunc(a.sent.snapshot(), func(al Alert) bool { return al.Endpoint == "cache:6379" }) ||
			slices.ContainsFunc(b.sent.snapshot(), func(al Alert) bool { return al.Endpoint == "cache:6379" })
	})
	if len(a.sent.snapshot()) > 0 {
		// The lease moved to a (a slow renewal on a loaded machine): the
		// window was not posted to another replica after all.
		t.Logf("the alerts' lease moved to the replica the window was posted to")
	}
	for _, r := range []replica{a, b} {
		for _, al := range r.sent.snapshot() {
			if al.Endpoint == "db:5432" {
				t.Errorf("db:5432's alert went out in window %s: %+v", w.ID, al)
			}
		}
	}
	for name, r := range map[string]replica{"poster": a, "holder": b} {
		if h := r.al.Held("web", "db:5432"); h != "maintenance "+w.ID {
			t.Errorf("the %s says db:5432 is held by %q", name, h)
		}
	}
}
