package monitor

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

func ep(name string, port uint16, interval time.Duration) Endpoint {
	return Endpoint{Name: name, Target: endpoint.Endpoint{Host: "127.0.0.1", Port: port}, Interval: interval, Timeout: interval, Expect: ExpectOpen}
}

// fakeProber answers by port: port 1 hangs until the timeout, others are open.
type fakeProber struct {
	mu       sync.Mutex
	count    map[string]int
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func (f *fakeProber) probe(ctx context.Context, e endpoint.Endpoint, opt probe.Options) probe.Result {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxIn.Load()
		if n <= m || f.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.count[e.String()]++
	f.mu.Unlock()
	if e.Port == 1 {
		select {
		case <-time.After(opt.Timeout):
			return probe.Result{Endpoint: e, Class: probe.Timeout, RTT: opt.Timeout}
		case <-ctx.Done():
			return probe.Result{Endpoint: e, Class: probe.Canceled}
		}
	}
	time.Sleep(time.Millisecond)
	return probe.Result{Endpoint: e, Class: probe.Open, RTT: time.Millisecond}
}

func (f *fakeProber) n(e Endpoint) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[e.Target.String()]
}

func runFor(t *testing.T, m *Monitor, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(d)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSlowEndpointNeverDelaysOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{count: map[string]int{}}
		slow := ep("slow", 1, time.Second) // hangs until its timeout every time
		slow.Timeout = 900 * time.Millisecond
		fast := ep("fast", 2, 100*time.Millisecond)
		slow2 := slow
		slow2.Name, slow2.Target.Host = "slow2", "127.0.0.2"
		m, err := New(t.Context(), &Config{Endpoints: []Endpoint{slow, slow2, fast}, Alerts: Alerts{Rise: 1, Fall: 1}},
			Options{Probe: f.probe, Concurrency: 3})
		if err != nil {
			t.Fatal(err)
		}
		runFor(t, m, 10*time.Second)
		// Fake time is exact: every 100ms tick ran, whatever the slow ones did.
		if n := f.n(fast); n < 99 || n > 100 {
			t.Errorf("fast endpoint probed %d times in 10s at 100ms; want 99-100", n)
		}
		if n := f.n(slow); n < 9 || n > 10 {
			t.Errorf("slow endpoint probed %d times in 10s; want 9-10", n)
		}
		st, _ := m.Status(LocalSource, "slow")
		if st.State != StateDown || st.Last.Class != probe.Timeout {
			t.Errorf("slow status = %+v", st)
		}
		if st, _ := m.Status(LocalSource, "fast"); st.State != StateUp {
			t.Errorf("fast status = %+v", st)
		}
	})
}

func TestConcurrencyIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{count: map[string]int{}}
		var eps []Endpoint
		for i := range 20 {
			e := ep("e"+string(rune('a'+i)), 1, time.Second)
			e.Target.Host = "127.0.0." + string(rune('1'+i%9))
			e.Target.Port = 1
			e.Name = e.Name + e.Target.Host
			eps = append(eps, e)
		}
		m, err := New(t.Context(), &Config{Endpoints: eps, Alerts: Alerts{Rise: 1, Fall: 1}}, Options{Probe: f.probe, Concurrency: 3})
		if err != nil {
			t.Fatal(err)
		}
		runFor(t, m, 5*time.Second)
		if got := f.maxIn.Load(); got != 3 {
			t.Errorf("max probes in flight = %d, want 3", got)
		}
	})
}

// recorder is a Notifier and a Diagnoser that remembers what it was told.
type recorder struct {
	mu     sync.Mutex
	alerts []Alert
	diags  int
}

func (r *recorder) Notify(a Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
}

func (r *recorder) Diagnose(ctx context.Context, e endpoint.Endpoint) (Diagnosis, error) {
	r.mu.Lock()
	r.diags++
	r.mu.Unlock()
	return Diagnosis{Cause: "not-listening", Verdict: "nothing listens on " + e.String(),
		Findings: []Finding{{Issue: "Server not running", Evidence: "no socket on " + e.String(), Fix: "start it"}}}, nil
}

func (r *recorder) snapshot() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Alert(nil), r.alerts...)
}

func TestRiseFallAndAlerts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := ep("db", 5432, time.Second)
		m, err := New(t.Context(), &Config{Endpoints: []Endpoint{e}, Alerts: Alerts{Rise: 2, Fall: 3}}, Options{Notifier: rec, Diagnoser: rec})
		if err != nil {
			t.Fatal(err)
		}
		open := probe.Result{Class: probe.Open, RTT: time.Millisecond}
		refused := probe.Result{Class: probe.Refused, Errno: 111}
		steps := []struct {
			r    probe.Result
			want State
		}{
			{open, StateUp},                                         // unknown -> up on the first success, without an alert
			{refused, StateUp}, {refused, StateUp}, {open, StateUp}, // a blip below fall
			{refused, StateUp}, {refused, StateUp}, {refused, StateDown}, // fall = 3
			{open, StateDown}, {refused, StateDown}, {open, StateDown}, {open, StateUp}, // rise = 2
		}
		for i, s := range steps {
			m.Observe(t.Context(), LocalSource, e, time.Now(), s.r)
			synctest.Wait()
			st, _ := m.Status(LocalSource, "db")
			if st.State != s.want {
				t.Fatalf("step %d: state %s, want %s", i, st.State, s.want)
			}
			if i == 6 && st.Cause != "not-listening" {
				t.Errorf("down status has cause %q, want the doctor's", st.Cause)
			}
			time.Sleep(time.Second)
		}
		m.wg.Wait()
		alerts := rec.snapshot()
		if len(alerts) != 2 {
			t.Fatalf("got %d alerts, want 2 (down, up): %+v", len(alerts), alerts)
		}
		down, up := alerts[0], alerts[1]
		if down.State != StateDown || down.Previous != StateUp || down.Class != probe.Refused || down.Errno != 111 ||
			down.Cause != "not-listening" || len(down.Findings) != 1 || down.Target != "127.0.0.1:5432" {
			t.Errorf("down alert = %+v", down)
		}
		if up.State != StateUp || up.Cause != "" || rec.diags != 1 {
			t.Errorf("up alert = %+v, %d diagnoses", up, rec.diags)
		}
	})
}

func TestExpectClosedAndLatencyThreshold(t *testing.T) {
	closed := ep("telnet", 23, time.Second)
	closed.Expect = ExpectClosed
	slow := ep("api", 80, time.Second)
	slow.LatencyThreshold = 100 * time.Millisecond
	for _, c := range []struct {
		ep   Endpoint
		r    probe.Result
		want bool
	}{
		{closed, probe.Result{Class: probe.Refused}, true},
		{closed, probe.Result{Class: probe.Timeout}, true},
		{closed, probe.Result{Class: probe.Open}, false},
		{slow, probe.Result{Class: probe.Open, RTT: 99 * time.Millisecond}, true},
		{slow, probe.Result{Class: probe.Open, RTT: 101 * time.Millisecond}, false},
		{slow, probe.Result{Class: probe.Reset}, false},
	} {
		if got := healthy(c.ep, c.r); got != c.want {
			t.Errorf("healthy(%s, %s %v) = %v, want %v", c.ep.Name, c.r.Class, c.r.RTT, got, c.want)
		}
	}
}

func TestReloadKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{count: map[string]int{}}
		a, b := ep("a", 2, time.Second), ep("b", 3, time.Second)
		cfg := &Config{Endpoints: []Endpoint{a, b}, Alerts: Alerts{Rise: 1, Fall: 1}}
		m, err := New(t.Context(), cfg, Options{Probe: f.probe})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()
		time.Sleep(3 * time.Second)
		before, _ := m.Status(LocalSource, "a")
		na := f.n(a)
		a2 := a
		a2.Interval = 500 * time.Millisecond
		a2.Timeout = 500 * time.Millisecond
		c := ep("c", 4, time.Second)
		m.Reload(&Config{Endpoints: []Endpoint{a2, c}, Alerts: Alerts{Rise: 1, Fall: 1}})
		time.Sleep(3 * time.Second)
		cancel()
		<-done
		after, _ := m.Status(LocalSource, "a")
		if before.State != StateUp || after.State != StateUp || !after.Since.Equal(before.Since) {
			t.Errorf("state across reload: before %+v after %+v", before, after)
		}
		if got := f.n(a) - na; got < 5 || got > 7 {
			t.Errorf("a probed %d times in 3s after its interval became 500ms; want 5-7", got)
		}
		if _, err := m.Status(LocalSource, "b"); !errors.Is(err, ErrNoEndpoint) {
			t.Errorf("removed endpoint b still has a status (%v)", err)
		}
		if st, _ := m.Status(LocalSource, "c"); st.State != StateUp {
			t.Errorf("added endpoint c = %+v", st)
		}
	})
}

// A real monitor with a real store on real loopback sockets: the state and
// its "since" carry on across a restart, and the down transition has the
// doctor's diagnosis.
func TestMonitorSurvivesRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		e := ep("gone", testnet.ClosedPort(t).Port(), 50*time.Millisecond)
		cfg := &Config{Endpoints: []Endpoint{e}, Alerts: Alerts{Rise: 1, Fall: 2}}
		rec := &recorder{}

		s := openTestStore(t, dsn)
		m, err := New(t.Context(), cfg, Options{Store: s, Diagnoser: rec, FlushInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()
		testnet.Eventually(t, 30*time.Second, "gone is down with a cause", func() bool {
			st, _ := m.Status(LocalSource, "gone")
			return st.State == StateDown && st.Cause != ""
		})
		cancel()
		<-done
		first, _ := m.Status(LocalSource, "gone")

		m2, err := New(t.Context(), cfg, Options{Store: openTestStore(t, dsn)})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := m2.Status(LocalSource, "gone")
		if got.State != StateDown || !got.Since.Equal(first.Since) || got.Cause != "not-listening" || got.Last.Class != probe.Refused {
			t.Errorf("after restart: %+v\nbefore: %+v", got, first)
		}
		ts, err := s.Transitions(t.Context(), LocalSource, "gone", 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 1 || ts[0].To != StateDown || ts[0].Diagnosis == nil || ts[0].Diagnosis.Cause != "not-listening" {
			t.Errorf("transitions = %+v", ts)
		}
		u, err := s.Uptime(t.Context(), LocalSource, "gone", time.Now().Add(-time.Hour))
		if err != nil || u.Total < 2 || u.OK != 0 {
			t.Errorf("uptime = %+v, %v", u, err)
		}
	})
}

// After a stall (a suspended laptop), missed ticks are skipped, not replayed,
// and the endpoint keeps its phase.
func TestDispatchSkipsMissedTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{count: map[string]int{}}
		e := ep("a", 2, time.Second)
		m, err := New(t.Context(), &Config{Endpoints: []Endpoint{e}, Alerts: Alerts{Rise: 1, Fall: 1}}, Options{Probe: f.probe})
		if err != nil {
			t.Fatal(err)
		}
		due := m.jobs["a"].due
		later := due.Add(time.Hour + 300*time.Millisecond)
		m.dispatch(t.Context(), later)
		m.wg.Wait()
		if n := f.n(e); n != 1 {
			t.Errorf("%d probes after a one-hour stall, want 1", n)
		}
		if got, want := m.jobs["a"].due, due.Add(3601*time.Second); !got.Equal(want) {
			t.Errorf("next due %v after the stall, want %v (same phase)", got.Sub(due), want.Sub(due))
		}
	})
}

// Results that arrive while Run ends, or after (a hub's agents keep
// reporting), neither panic nor start goroutines that outlive Run.
func TestObserveAfterRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := ep("db", 5432, time.Second)
		store := openTestStore(t, filepath.Join(t.TempDir(), "reach.db"))
		m, err := New(t.Context(), &Config{Endpoints: []Endpoint{e}, Alerts: Alerts{Rise: 1, Fall: 1}},
			Options{Store: store, Notifier: rec, Diagnoser: rec, Probe: (&fakeProber{count: map[string]int{}}).probe})
		if err != nil {
			t.Fatal(err)
		}
		runFor(t, m, 3*time.Second)
		m.Observe(t.Context(), "agent-1", e, time.Now(), probe.Result{Class: probe.Refused})
		synctest.Wait()
		if st, _ := m.Status("agent-1", "db"); st.State != StateDown {
			t.Errorf("status after Run = %+v", st)
		}
		if a := rec.snapshot(); len(a) != 0 || rec.diags != 0 {
			t.Errorf("after Run: %d alerts, %d diagnoses; want none", len(a), rec.diags)
		}
	})
}

// TestFailedWriteKeepsStateChanges: a batch the store refuses loses its
// samples, but its state changes and diagnoses are written with the next
// batch that succeeds: they are what the dashboard's findings and a
// restart's state come from.
func TestFailedWriteKeepsStateChanges(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		s := openTestStore(t, dsn)
		reg := prometheus.NewRegistry()
		mt := NewMetrics(reg)
		rec := &recorder{}
		e := ep("db", 5432, time.Hour)
		m, err := New(t.Context(), &Config{Alerts: Alerts{Rise: 1, Fall: 1}},
			Options{Store: s, Metrics: mt, Notifier: rec, FlushInterval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		writeErrors := func() float64 {
			var d dto.Metric
			mt.writeErrors.Write(&d)
			return d.GetCounter().GetValue()
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		defer func() { cancel(); <-done }()

		// Every write fails while the samples table is away.
		if _, err := s.db.Exec(`ALTER TABLE samples RENAME TO samples_away`); err != nil {
			t.Fatal(err)
		}
		down := time.Now()
		m.Observe(t.Context(), "agent-1", e, down, probe.Result{Class: probe.Refused})
		testnet.Eventually(t, 30*time.Second, "the change is queued", func() bool { return len(rec.snapshot()) == 1 })
		// Two more failed writes: the change was in one of them.
		e0 := writeErrors()
		testnet.Eventually(t, 30*time.Second, "two more failed writes", func() bool {
			m.Observe(t.Context(), "agent-1", e, time.Now(), probe.Result{Class: probe.Refused})
			return writeErrors() >= e0+2
		})
		if _, err := s.db.Exec(`ALTER TABLE samples_away RENAME TO samples`); err != nil {
			t.Fatal(err)
		}
		m.Observe(t.Context(), "agent-1", e, time.Now(), probe.Result{Class: probe.Refused})
		testnet.Eventually(t, 30*time.Second, "the down transition is stored", func() bool {
			ts, err := s.Transitions(t.Context(), "agent-1", "db", 5)
			return err == nil && len(ts) == 1 && ts[0].To == StateDown && ts[0].Time.Equal(time.UnixMilli(down.UnixMilli()))
		})
	})
}

// TestForgetSources: a pair removed from the hub's configuration leaves
// the dashboard and /metrics (a down pair kept reach_endpoint_up at 0, and
// alerts firing, until a restart); the monitor's own endpoints and the pairs
// kept stay.
func TestForgetSources(t *testing.T) {
	reg := prometheus.NewRegistry()
	local := ep("api", 8080, time.Hour)
	m, err := New(t.Context(), &Config{Endpoints: []Endpoint{local}, Alerts: Alerts{Rise: 1, Fall: 1}}, Options{Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	db := ep("db:5432", 5432, time.Hour)
	for _, src := range []string{"web-1", "web-2"} {
		m.Observe(t.Context(), src, db, time.Now(), probe.Result{Class: probe.Refused})
	}
	m.Observe(t.Context(), LocalSource, local, time.Now(), probe.Result{Class: probe.Open})
	m.wg.Wait()
	changed := m.Changed()
	m.ForgetSources(func(source, name string) bool { return source == "web-1" && name == "db:5432" })
	select {
	case <-changed:
	default:
		t.Error("the dashboard was not told")
	}
	var got []string
	for _, st := range m.Statuses() {
		got = append(got, st.Source+"/"+st.Endpoint)
	}
	if want := []string{"local/api", "web-1/db:5432"}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == "web-2" {
					t.Errorf("%s still has a series for web-2: %v", f.GetName(), mt.GetLabel())
				}
			}
		}
	}
}

// blockingDiagnoser waits for its context to end, as a doctor asking a
// silent host would until its timeout.
type blockingDiagnoser struct{ entered chan struct{} }

func (d blockingDiagnoser) Diagnose(ctx context.Context, _ endpoint.Endpoint) (Diagnosis, error) {
	d.entered <- struct{}{}
	<-ctx.Done()
	return Diagnosis{}, ctx.Err()
}

func (d blockingDiagnoser) DiagnoseFrom(ctx context.Context, _ string, ep Endpoint, _ probe.Class) (Diagnosis, error) {
	return d.Diagnose(ctx, ep.Target)
}

// TestRunEndsOutsideDiagnoses: a diagnosis started by a result observed
// from outside (an agent's, through the hub, whose request context is gone
// or never ends) ends when Run does, not after its own timeout: the
// monitor started it, so the monitor ends it, and no caller has to keep
// Run's context around for Observe.
func TestRunEndsOutsideDiagnoses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := blockingDiagnoser{entered: make(chan struct{}, 1)}
		m, err := New(t.Context(), &Config{Alerts: Alerts{Rise: 1, Fall: 1}}, Options{Diagnoser: d})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		m.Observe(context.Background(), "agent-1", ep("db", 5432, time.Hour), time.Now(), probe.Result{Class: probe.Refused})
		<-d.entered
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 0 {
			t.Errorf("Run took %v to end after its context: the diagnosis outlived it", took)
		}
	})
}

// An endpoint's source and interface reach its probes.
func TestProbesLeaveFromSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		seen := map[string]probe.Options{}
		prober := func(_ context.Context, e endpoint.Endpoint, opt probe.Options) probe.Result {
			mu.Lock()
			seen[e.String()] = opt
			mu.Unlock()
			return probe.Result{Endpoint: e, Class: probe.Open}
		}
		pinned := ep("pinned", 2, time.Second)
		pinned.Source, pinned.Interface = netip.MustParseAddr("127.0.0.2"), "lo"
		plain := ep("plain", 3, time.Second)
		m, err := New(t.Context(), &Config{Endpoints: []Endpoint{pinned, plain}}, Options{Probe: prober})
		if err != nil {
			t.Fatal(err)
		}
		runFor(t, m, 2*time.Second)
		mu.Lock()
		defer mu.Unlock()
		if o := seen[pinned.Target.String()]; o.Source != pinned.Source || o.Interface != "lo" {
			t.Errorf("pinned probed with source %v interface %q", o.Source, o.Interface)
		}
		if o, ok := seen[plain.Target.String()]; !ok || o.Source.IsValid() || o.Interface != "" {
			t.Errorf("plain probed (%v) with source %v interface %q", ok, o.Source, o.Interface)
		}
	})
}
