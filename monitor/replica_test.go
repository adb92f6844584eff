package monitor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testdb"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/netwatch"
	"github.com/reach-tools/reach/probe"
)

// countingDeliverer counts deliveries by alert id.
type countingDeliverer struct {
	mu  sync.Mutex
	got map[int64]int
	all []Alert
}

func (d *countingDeliverer) Deliver(_ context.Context, a Alert) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got[a.ID]++
	d.all = append(d.all, a)
	return nil
}

func (d *countingDeliverer) alerts() []Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Alert(nil), d.all...)
}

type testReplica struct {
	m      *Monitor
	r      *Replica
	cancel context.CancelFunc
	done   chan error
}

// startReplica runs a replica's monitor of cfg on dsn until stop or the
// test's end.
func startReplica(t *testing.T, dsn string, cfg *Config, d Deliverer, interval time.Duration) *testReplica {
	t.Helper()
	ctx := context.Background()
	store, err := OpenReplica(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r, err := Join(ctx, store, ReplicaOptions{Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	var n Notifier
	if d != nil {
		n = deliverNotifier{d}
	}
	m, err := New(ctx, cfg, Options{Store: store, Replica: r, Notifier: n, FlushInterval: 50 * time.Millisecond,
		Probe: func(context.Context, endpoint.Endpoint, probe.Options) probe.Result {
			return probe.Result{Class: probe.Refused}
		}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	tr := &testReplica{m: m, r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { tr.done <- m.Run(rctx) }()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *testReplica) stop() {
	tr.cancel()
	<-tr.done
	tr.done <- nil // stop again returns at once
}

// deliverNotifier is a Notifier that is a Deliverer, as Webhook is.
type deliverNotifier struct{ d Deliverer }

func (n deliverNotifier) Notify(Alert) {}
func (n deliverNotifier) Deliver(ctx context.Context, a Alert) error {
	return n.d.Deliver(ctx, a)
}

func report(seq uint64, ok bool, at time.Time) Report {
	r := probe.Result{Class: probe.Open}
	if !ok {
		r.Class = probe.Refused
	}
	e := Endpoint{Name: "db:5432", Target: endpoint.Endpoint{Host: "198.18.0.2", Port: 5432}, Expect: ExpectOpen}
	return Report{Endpoint: e, Time: at, Result: r, Run: 42, Seq: seq}
}

// Two replicas on one database: an agent's results sent to both (a resend
// after a failover) are stored once; the state changes they make are
// recorded once, whichever replica saw them; each alert is delivered once
// by the replica holding the job; and when that one stops, the other takes
// the job and the endpoints.
func TestReplicasShareOneFleet(t *testing.T) {
	dsn := testdb.PostgresSchema(t)
	cfg := &Config{Alerts: Alerts{Rise: 1, Fall: 1}}
	for _, name := range []string{"e1", "e2", "e3", "e4", "e5", "e6"} {
		cfg.Endpoints = append(cfg.Endpoints, ep(name, 1, time.Second))
	}
	d := &countingDeliverer{got: map[int64]int{}}
	interval := 2 * time.Second // generous: a loaded machine renews late
	a := startReplica(t, dsn, cfg, d, interval)
	b := startReplica(t, dsn, cfg, d, interval)
	testnet.Eventually(t, 10*time.Second, "both replicas see each other", func() bool {
		return len(a.r.Live()) == 2 && len(b.r.Live()) == 2
	})
	// Each endpoint is probed by exactly one of them.
	for _, e := range cfg.Endpoints {
		if a.r.Owns(e.Name) == b.r.Owns(e.Name) {
			t.Errorf("%s: owned by a %v, by b %v; want exactly one", e.Name, a.r.Owns(e.Name), b.r.Owns(e.Name))
		}
	}

	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	// up, down, down, up: to a; then all of it again, and more, to b.
	if err := a.m.Ingest(ctx, "web", []Report{report(1, true, at(1)), report(2, false, at(2)),
		report(3, false, at(3))}); err != nil {
		t.Fatal(err)
	}
	if err := b.m.Ingest(ctx, "web", []Report{report(1, true, at(1)), report(2, false, at(2)),
		report(3, false, at(3)), report(4, true, at(4)), report(5, true, at(5))}); err != nil {
		t.Fatal(err)
	}
	// Both at once, the same results: one of them stores them.
	var wg sync.WaitGroup
	for _, tr := range []*testReplica{a, b} {
		wg.Go(func() {
			if err := tr.m.Ingest(ctx, "web", []Report{report(6, false, at(6)), report(7, true, at(7))}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT COUNT(*) FROM samples WHERE source = 'web'`); n != 7 {
		t.Errorf("%d samples stored from web, want 7 (each result once)", n)
	}
	// unknown→up, up→down, down→up, up→down, down→up.
	if n := count(`SELECT COUNT(*) FROM transitions WHERE source = 'web'`); n != 5 {
		t.Errorf("%d state changes stored, want 5", n)
	}
	testnet.Eventually(t, 10*time.Second, "four alerts delivered", func() bool {
		var web int
		for _, al := range d.alerts() {
			if al.Source == "web" {
				web++
			}
		}
		return web >= 4
	})
	// When the agent last reached a replica, for the one looking for stale agents.
	seen, err := a.m.Store().AgentsSeen(ctx)
	if err != nil || time.Since(seen["web"]) > time.Minute {
		t.Errorf("agents seen: %v, %v; want web within the minute", seen, err)
	}
	testnet.Eventually(t, 10*time.Second, "the agents job held by exactly one", func() bool {
		return a.r.Holds(JobAgents) != b.r.Holds(JobAgents)
	})
	// Both replicas show the pair as the store has it.
	for name, tr := range map[string]*testReplica{"a": a, "b": b} {
		testnet.Eventually(t, 10*time.Second, name+" shows web's pair up", func() bool {
			st, err := tr.m.Status("web", "db:5432")
			return err == nil && st.State == StateUp && st.Last.Time.Equal(at(7))
		})
	}

	// The local endpoints: each went down once, probed by one replica.
	testnet.Eventually(t, 10*time.Second, "every endpoint down", func() bool {
		return count(`SELECT COUNT(*) FROM states WHERE source = 'local' AND state = 'down'`) == len(cfg.Endpoints)
	})
	if n := count(`SELECT COUNT(*) FROM transitions WHERE source = 'local'`); n != len(cfg.Endpoints) {
		t.Errorf("%d state changes of local endpoints, want %d (one each)", n, len(cfg.Endpoints))
	}

	// The holder of the alerts stops; the other takes over within two
	// intervals of the holder's last renewal (the database's clock).
	testnet.Eventually(t, 10*time.Second, "the alerts held by exactly one", func() bool {
		return a.r.Holds(JobAlerts) != b.r.Holds(JobAlerts)
	})
	holder, other := a, b
	if !a.r.Holds(JobAlerts) {
		holder, other = b, a
	}
	holder.stop()
	testnet.Eventually(t, 10*time.Second, "the other replica takes the alerts", func() bool {
		return other.r.Holds(JobAlerts) && other.r.Holds(JobCompact) && len(other.r.Live()) == 1
	})
	for _, e := range cfg.Endpoints {
		if !other.r.Owns(e.Name) {
			t.Errorf("%s is not probed by the replica left", e.Name)
		}
	}
	if err := other.m.Ingest(ctx, "web", []Report{report(8, false, at(8))}); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, "the alert after the takeover delivered", func() bool {
		for _, al := range d.alerts() {
			if al.Source == "web" && al.Time.Equal(at(8)) {
				return true
			}
		}
		return false
	})
	// Delivered, then marked sent: wait for the mark.
	testnet.Eventually(t, 10*time.Second, "no alert left queued", func() bool {
		return count(`SELECT COUNT(*) FROM outbox WHERE sent IS NULL`) == 0
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, n := range d.got {
		if n != 1 || id == 0 {
			t.Errorf("alert %d delivered %d times, want once with an id", id, n)
		}
	}
	if n := count(`SELECT COUNT(*) FROM outbox`); n != len(d.got) {
		t.Errorf("%d alerts queued in all, %d delivered", n, len(d.got))
	}
}

// SQLite is one process's store: a replica on it is refused, saying to use
// PostgreSQL; and a monitor that holds a PostgreSQL store alone and
// replicas exclude each other.
func TestReplicaStoreRefusals(t *testing.T) {
	ctx := context.Background()
	_, err := OpenReplica(ctx, t.TempDir()+"/reach.db", nil)
	if !errors.Is(err, ErrReplicaStore) || !containsAll(err.Error(), "use PostgreSQL for replicas") {
		t.Errorf("replica on SQLite: %v", err)
	}
	dsn := testdb.PostgresSchema(t)
	alone, err := OpenExclusive(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReplica(ctx, dsn, nil); !errors.Is(err, ErrInUse) || !containsAll(err.Error(), "--replica") {
		t.Errorf("replica beside a lone monitor: %v", err)
	}
	alone.Close()
	r1, err := OpenReplica(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := OpenReplica(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("second replica: %v", err)
	}
	defer r2.Close()
	if s, err := OpenExclusive(ctx, dsn, nil); !errors.Is(err, ErrInUse) {
		if s != nil {
			s.Close()
		}
		t.Errorf("a lone monitor beside replicas: %v", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestSharedWritesLockTheirStates has two replicas write samples of the
// same pairs at once, round after round, up then down then up: the states'
// lock (one per source) must let each see the other's write, so each pair
// changes state once a round, whichever replica wrote first.
func TestSharedWritesLockTheirStates(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.PostgresSchema(t)
	var stores [2]*Store
	for i := range stores {
		s, err := OpenReplica(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	const rounds, sources, perSource = 10, 5, 20
	base := time.Now().Add(-time.Hour)
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, len(stores))
		for i, s := range stores {
			var batch []sharedSample
			for src := range sources {
				for ep := range perSource {
					batch = append(batch, sharedSample{Sample: Sample{
						Endpoint: fmt.Sprintf("e%d", ep), Source: fmt.Sprintf("agent-%d", src),
						Time: base.Add(time.Duration(round*10+i) * time.Second), OK: round%2 == 0,
						Class: probe.Open}})
				}
			}
			wg.Go(func() { _, errs[i] = s.writeShared(ctx, batch, sharedRules{Rise: 1, Fall: 1}) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, replica %d: %v", round, i+1, err)
			}
		}
	}
	var n int
	if err := stores[0].db.QueryRow(`SELECT COUNT(*) FROM transitions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := rounds * sources * perSource; n != want {
		t.Errorf("%d state changes, want %d: one a round for each of %d pairs", n, want, sources*perSource)
	}
}

// TestSharedRevisions: a write gives a status a new revision (what the
// other replicas read) only for what they must see at once, or when their
// copy of its last sample is sharedRefresh old; other writes keep the
// revision and still store the last sample.
func TestSharedRevisions(t *testing.T) {
	ctx := context.Background()
	s, err := OpenReplica(ctx, testdb.PostgresSchema(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	ok := func(sec int) Sample {
		return Sample{Endpoint: "db", Source: "a", Time: at(sec), OK: true, Class: probe.Open}
	}
	fail := func(sec int) Sample {
		return Sample{Endpoint: "db", Source: "a", Time: at(sec), Class: probe.Refused, Errno: 111}
	}
	steps := []struct {
		name   string
		sample Sample
		newRev bool
	}{
		{"first sample", ok(0), true},
		{"steady", ok(10), false},
		{"steady again", ok(20), false},
		{"last sample 30 s past the revision's", ok(30), true},
		{"steady after it", ok(40), false},
		{"refused", fail(50), true},
		{"refused again", fail(60), false},
		{"down (fall 3)", fail(70), true},
		{"up", ok(80), true},
	}
	var rev int64
	seen := int64(0)
	for _, st := range steps {
		res, err := s.writeShared(ctx, []sharedSample{{Sample: st.sample}}, sharedRules{Rise: 1, Fall: 3})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := res.Statuses[0]
		if (got.Rev != rev) != st.newRev {
			t.Errorf("%s: revision %d after %d, want a new one: %v", st.name, got.Rev, rev, st.newRev)
		}
		if !got.Last.Time.Equal(st.sample.Time) {
			t.Errorf("%s: last sample at %v, want %v", st.name, got.Last.Time, st.sample.Time)
		}
		var lastTS int64
		if err := s.db.QueryRow(`SELECT last_ts FROM states`).Scan(&lastTS); err != nil || lastTS != st.sample.Time.UnixMilli() {
			t.Errorf("%s: stored last sample at %d (%v), want %d", st.name, lastTS, err, st.sample.Time.UnixMilli())
		}
		// What another replica reads: only the new revisions.
		polled, err := s.statesSince(ctx, seen)
		if err != nil {
			t.Fatal(err)
		}
		if (len(polled) == 1) != st.newRev {
			t.Errorf("%s: another replica read %d statuses, want a new revision: %v", st.name, len(polled), st.newRev)
		}
		for _, p := range polled {
			seen = p.Rev
		}
		rev = got.Rev
	}
}

// BenchmarkSharedWrite is the replicas' store path alone: two replicas'
// writers on one PostgreSQL (REACH_TEST_POSTGRES), each writing batches of
// 5,000 samples of a 100,000-pair fleet whose every pair is up (the steady
// state; the first round, every pair's first sample, is not timed). An op
// is one batch from each replica, written at once.
//
//	REACH_TEST_POSTGRES=... go test -run '^$' -bench SharedWrite -benchtime 40x ./monitor/
func BenchmarkSharedWrite(b *testing.B) {
	ctx := context.Background()
	dsn := os.Getenv("REACH_TEST_POSTGRES")
	if dsn == "" {
		b.Skip("REACH_TEST_POSTGRES not set; run scripts/pg-start and export its DSN")
	}
	schema := testdb.PostgresSchema(b)
	var stores [2]*Store
	for i := range stores {
		s, err := OpenReplica(ctx, schema, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	const agents, perAgent, batch = 1000, 100, 5000
	// Replica i takes the agents i, i+2, ...: 10 batches of 50 agents each
	// make a round of every pair.
	batches := func(replica int, at time.Time) [][]sharedSample {
		var out [][]sharedSample
		var cur []sharedSample
		for a := replica; a < agents; a += 2 {
			for e := range perAgent {
				cur = append(cur, sharedSample{Sample: Sample{Endpoint: fmt.Sprintf("host-%d:5432", e),
					Source: fmt.Sprintf("host-%d", a), Time: at, OK: true, Class: probe.Open,
					RTT: 180 * time.Microsecond}})
			}
			if len(cur) == batch {
				out, cur = append(out, cur), nil
			}
		}
		return out
	}
	rules := sharedRules{Rise: 2, Fall: 3}
	write := func(round int) {
		at := time.Now().Add(-time.Hour).Add(time.Duration(round) * 10 * time.Second)
		var bs [2][][]sharedSample
		for i := range bs {
			bs[i] = batches(i, at)
		}
		for k := range bs[0] {
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Go(func() {
					if _, err := s.writeShared(ctx, bs[i][k], rules); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
	}
	write(0)
	b.ResetTimer()
	ops := 0
	for round := 1; ops < b.N; round++ {
		write(round)
		ops += agents / 2 * perAgent / batch
	}
	b.ReportMetric(float64(2*batch*ops)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(ops), "ms/batch")
}

// TestReplicaAlertCarriesNetworkChange: a pair that goes down just after
// its agent saw its own network change is alerted with that change, as a
// monitor alone does, and the change counts it once.
func TestReplicaAlertCarriesNetworkChange(t *testing.T) {
	d := &countingDeliverer{got: map[int64]int{}}
	tr := startReplica(t, testdb.PostgresSchema(t), &Config{Alerts: Alerts{Rise: 1, Fall: 1}}, d, time.Second)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	if err := tr.m.Ingest(ctx, "web", []Report{report(1, true, now.Add(-time.Second))}); err != nil {
		t.Fatal(err)
	}
	route := netwatch.Change{Time: now, Kind: netwatch.KindRoute, Op: "removed",
		Prefix: netip.MustParsePrefix("198.18.0.0/24"), Detail: "route 198.18.0.0/24 dev r0 removed"}
	tr.m.NoteChange("web", netwatch.Burst{First: now, Last: now, Changes: []netwatch.Change{route}, Count: 1},
		[]string{"db:5432"}, time.Minute)
	if err := tr.m.Ingest(ctx, "web", []Report{report(2, false, now.Add(time.Second))}); err != nil {
		t.Fatal(err)
	}
	var down Alert
	testnet.Eventually(t, 10*time.Second, "the down alert delivered", func() bool {
		for _, a := range d.alerts() {
			if a.State == StateDown {
				down = a
				return true
			}
		}
		return false
	})
	if !strings.Contains(down.Change, "198.18.0.0/24") {
		t.Errorf("down alert's change = %q, want the route removed", down.Change)
	}
	changes := tr.m.NetChanges()
	if len(changes) != 1 || !slices.Equal(changes[0].Down, []string{"db:5432"}) {
		t.Errorf("changes = %+v, want one whose down list is db:5432 once", changes)
	}
}
