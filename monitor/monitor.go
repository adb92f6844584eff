package monitor

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// Defaults for Options.
const (
	DefaultConcurrency   = 512
	DefaultFlushInterval = time.Second
	DefaultBatchSize     = 5000
	DefaultDiagnoseLimit = 4
	DefaultRetain        = 30 * 24 * time.Hour
	DefaultRawFor        = 2 * time.Hour
	DefaultStoreGrace    = 30 * time.Second
	compactEvery         = 5 * time.Minute
	storeLogEvery        = time.Minute
	diagnoseTimeout      = 30 * time.Second
)

// Options configure a Monitor. The zero value of each field is a working default.
type Options struct {
	// Store keeps history; nil keeps state in memory only.
	Store *Store
	// Diagnoser explains each transition to down; nil skips diagnosis.
	Diagnoser Diagnoser
	// Notifier is told of state changes (after diagnosis); nil tells nobody.
	Notifier Notifier
	// Metrics, when set, are updated with every result.
	Metrics *Metrics
	// Probe runs one probe; nil uses probe.Run.
	Probe func(context.Context, endpoint.Endpoint, probe.Options) probe.Result
	// Dial is passed to every probe; nil dials directly.
	Dial probe.DialFunc
	// Concurrency bounds probes in flight (DefaultConcurrency).
	Concurrency int
	// FlushInterval and BatchSize bound a write batch: it is written when
	// either is reached (DefaultFlushInterval, DefaultBatchSize).
	FlushInterval time.Duration
	BatchSize     int
	// DiagnoseLimit bounds diagnoses running at once (DefaultDiagnoseLimit).
	DiagnoseLimit int
	// Retain is how long history is kept (DefaultRetain); samples older than
	// RawFor (DefaultRawFor, at most Retain) are downsampled to RollupWidth,
	// and those buckets to HourlyWidth after RollupFor.
	Retain, RawFor time.Duration
	// StoreGrace is how long every write to the store may fail before the
	// store is called unhealthy (StoreHealth, /healthz, reach_store_healthy);
	// DefaultStoreGrace. A single failed batch is logged at once, and while
	// failures last, once a minute.
	StoreGrace time.Duration
	// Replica, when set, makes this monitor one of several sharing Store
	// (PostgreSQL, opened by OpenReplica): it probes only the endpoints
	// Replica.Owns, folds every result into the shared states in the
	// store (see writeShared), reads the others' changes from there, and
	// compacts and sends alerts (through Notifier, a Deliverer) only
	// while it holds those jobs.
	Replica *Replica
	Logger  *slog.Logger
}

// Notifier is told of state changes; it must not block.
type Notifier interface {
	Notify(Alert)
}

// Alert is a state change as announced to the outside. The monitor tells
// its Notifier of each change; an Alerter decides which become alerts and
// sets Kind, Since, Dependents, Changes and Text.
type Alert struct {
	Kind AlertKind `json:"kind,omitempty"`
	// ID is the alert's number in the replicas' outbox, the same however
	// often it is delivered (a receiver may drop repeats by it); 0 from a
	// monitor that runs alone, and for reminders and flapping-stopped
	// notices, which the clock makes, not a state change.
	ID       int64             `json:"id,omitempty"`
	Endpoint string            `json:"endpoint"`
	Source   string            `json:"source"`
	Target   string            `json:"target"`
	Labels   map[string]string `json:"labels,omitempty"`
	State    State             `json:"state"`
	Previous State             `json:"previous"`
	Time     time.Time         `json:"time"`
	Class    probe.Class       `json:"class"`
	Errno    int               `json:"errno,omitempty"`
	Cause    string            `json:"cause,omitempty"`
	Verdict  string            `json:"verdict,omitempty"`
	Findings []Finding         `json:"findings,omitempty"`
	// Change is the network change this state change followed, when one
	// did ("route 198.18.0.0/24 dev r0 removed at 10:42:03").
	Change string `json:"change,omitempty"`
	// Since is when the endpoint went down (for down, reminder and
	// resolved alerts).
	Since time.Time `json:"since,omitzero"`
	// Dependents are the endpoints down behind this one (they depend on
	// it): their own alerts are held.
	Dependents []string `json:"dependents,omitempty"`
	// Changes counts the state changes that made a flapping alert.
	Changes int `json:"changes,omitempty"`
	// Text is the alert as one line for people; chat webhooks (Slack,
	// Mattermost) show this field.
	Text string `json:"text,omitempty"`
}

type key struct{ source, name string }

// job is one scheduled endpoint.
type job struct {
	ep      Endpoint
	due     time.Time
	index   int  // in the heap; -1 when removed
	running bool // a probe is in flight; guarded by Monitor.mu
	// rechecks is how many re-probes a network change still asks for,
	// RecheckGap apart, before the interval's schedule resumes.
	rechecks int
}

type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h jobHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *jobHeap) Push(x any)        { j := x.(*job); j.index = len(*h); *h = append(*h, j) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h, j.index = old[:len(old)-1], -1
	return j
}

type entry struct {
	ep     Endpoint
	status Status
	seq    uint64     // Monitor.seq when status last changed
	addr   netip.Addr // the address the last probe connected to
	// change is the last network change that may affect the endpoint;
	// its transitions until changeUntil are counted as that change's.
	change      *NetChange
	changeUntil time.Time
	rev         int64 // replicas: the stored revision status is at
}

// Monitor probes endpoints on schedule and keeps their state. Create it
// with New, start it with Run.
type Monitor struct {
	opt   Options
	log   *slog.Logger
	sem   chan struct{}
	diag  chan struct{}
	wake  chan struct{}
	batch chan update

	mu       sync.Mutex
	alerts   Alerts
	jobs     map[string]*job
	queue    jobHeap
	entries  map[key]*entry
	seq      uint64
	listSeq  uint64       // seq when endpoints were last added or removed
	changes  []*NetChange // the last keptChanges network changes, oldest first
	changeID uint64
	changed  chan struct{} // closed and replaced on every state change
	draining bool          // Run is ending: no new goroutines
	stop     chan struct{} // closed when Run begins to end
	stopped  bool          // batch is closed

	wg sync.WaitGroup

	healthMu sync.Mutex
	health   StoreHealth // of the last write; guarded by healthMu

	pollRev int64 // replicas: the highest stored revision read; only poll touches it
}

// New builds a monitor for cfg, restoring state from the store.
func New(ctx context.Context, cfg *Config, opt Options) (*Monitor, error) {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = DefaultFlushInterval
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	if opt.DiagnoseLimit <= 0 {
		opt.DiagnoseLimit = DefaultDiagnoseLimit
	}
	if opt.Retain <= 0 {
		opt.Retain = DefaultRetain
	}
	if opt.RawFor <= 0 {
		opt.RawFor = DefaultRawFor
	}
	if opt.StoreGrace <= 0 {
		opt.StoreGrace = DefaultStoreGrace
	}
	opt.RawFor = min(opt.RawFor, opt.Retain)
	if opt.Probe == nil {
		opt.Probe = probe.Run
	}
	m := &Monitor{
		opt:     opt,
		log:     opt.Logger,
		sem:     make(chan struct{}, opt.Concurrency),
		diag:    make(chan struct{}, opt.DiagnoseLimit),
		wake:    make(chan struct{}, 1),
		batch:   make(chan update, 4*opt.BatchSize),
		jobs:    map[string]*job{},
		entries: map[key]*entry{},
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if opt.Replica != nil {
		if opt.Store == nil || opt.Replica.store != opt.Store {
			return nil, fmt.Errorf("%w: a replica's monitor writes to the store it joined", ErrReplicaStore)
		}
		states, err := opt.Store.statesSince(ctx, 0)
		if err != nil {
			return nil, err
		}
		for _, st := range states {
			m.entries[key{st.Source, st.Endpoint}] = &entry{status: st.Status, rev: st.Rev}
			m.pollRev = max(m.pollRev, st.Rev)
		}
	} else if opt.Store != nil {
		states, err := opt.Store.States(ctx)
		if err != nil {
			return nil, err
		}
		for _, st := range states {
			m.entries[key{st.Source, st.Endpoint}] = &entry{status: st}
		}
	}
	m.Reload(cfg)
	return m, nil
}

// Reload applies a new configuration without losing state: endpoints that
// stay keep their state, history and schedule; new ones start with a random
// phase; removed ones stop (their history stays in the store).
func (m *Monitor) Reload(cfg *Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.alerts = cfg.Alerts
	if m.alerts.Rise <= 0 {
		m.alerts.Rise = DefaultRise
	}
	if m.alerts.Fall <= 0 {
		m.alerts.Fall = DefaultFall
	}
	now := time.Now()
	keep := map[string]bool{}
	for _, ep := range cfg.Endpoints {
		keep[ep.Name] = true
		e := m.entries[key{LocalSource, ep.Name}]
		if e == nil {
			e = &entry{status: Status{Endpoint: ep.Name, Source: LocalSource, State: StateUnknown, Since: now}}
			m.entries[key{LocalSource, ep.Name}] = e
		}
		e.ep = ep
		e.status.Target, e.status.Labels = ep.TargetString(), ep.Labels
		if j := m.jobs[ep.Name]; j != nil {
			j.ep = ep
			if next := now.Add(ep.Interval); j.due.After(next) {
				j.due = next
				heap.Fix(&m.queue, j.index)
			}
			continue
		}
		// A random phase spreads the load over the interval.
		j := &job{ep: ep, due: now.Add(rand.N(ep.Interval))}
		m.jobs[ep.Name] = j
		heap.Push(&m.queue, j)
	}
	for name, j := range m.jobs {
		if !keep[name] {
			heap.Remove(&m.queue, j.index)
			delete(m.jobs, name)
		}
	}
	for k := range m.entries {
		if k.source == LocalSource && !keep[k.name] {
			delete(m.entries, k)
			m.opt.Metrics.forget(LocalSource, k.name)
		}
	}
	m.seq++
	m.listSeq = m.seq
	m.notifyLocked()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// ForgetSources drops the state and metrics of the endpoints seen from
// other sources (agents) that keep refuses, e.g. the pairs a reload removed
// from the hub's configuration; their history stays in the store. The
// monitor's own endpoints follow Reload.
func (m *Monitor) ForgetSources(keep func(source, name string) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	forgot := false
	for k := range m.entries {
		if k.source != LocalSource && !keep(k.source, k.name) {
			delete(m.entries, k)
			m.opt.Metrics.forget(k.source, k.name)
			forgot = true
		}
	}
	if forgot {
		m.seq++
		m.listSeq = m.seq
		m.notifyLocked()
	}
}

// Run probes until ctx ends, then waits for probes in flight and writes the
// last batch.
func (m *Monitor) Run(ctx context.Context) error {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		m.writer(ctx)
	}()
	if m.opt.Store != nil {
		m.wg.Add(1)
		go m.compactor(ctx)
	}
	if r := m.opt.Replica; r != nil {
		m.wg.Add(3)
		go func() { defer m.wg.Done(); r.Run(ctx) }()
		go m.poll(ctx)
		go m.sendAlerts(ctx)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.mu.Lock()
		wait := time.Hour
		if len(m.queue) > 0 {
			wait = time.Until(m.queue[0].due)
		}
		m.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			m.mu.Lock()
			if !m.draining {
				m.draining = true // after this, nothing adds to wg
				close(m.stop)     // and the diagnoses in flight end
			}
			m.mu.Unlock()
			m.wg.Wait()
			m.mu.Lock()
			m.stopped = true
			close(m.batch)
			m.mu.Unlock()
			<-writerDone
			return nil
		case <-m.wake:
			continue
		case <-timer.C:
		}
		m.dispatch(ctx, time.Now())
	}
}

// dispatch starts every probe that is due. It never waits for a probe: each
// runs in its own goroutine, which waits for a concurrency slot itself.
func (m *Monitor) dispatch(ctx context.Context, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.queue) > 0 && !m.queue[0].due.After(now) {
		j := m.queue[0]
		due := j.due
		// Keep the phase; skip ticks missed while we were late.
		j.due = j.due.Add((now.Sub(j.due)/j.ep.Interval + 1) * j.ep.Interval)
		heap.Fix(&m.queue, 0)
		if j.running {
			continue // a probe longer than its interval; config forbids, but be safe
		}
		if r := m.opt.Replica; r != nil && !r.Owns(j.ep.Name) {
			continue // another replica probes it
		}
		j.running = true
		m.wg.Add(1)
		go m.probe(ctx, j, j.ep, due)
	}
}

func (m *Monitor) probe(ctx context.Context, j *job, ep Endpoint, due time.Time) {
	defer m.wg.Done()
	defer func() {
		m.mu.Lock()
		j.running = false
		if j.rechecks > 0 {
			j.rechecks--
		}
		if j.rechecks > 0 && j.index >= 0 {
			j.due = time.Now().Add(RecheckGap)
			heap.Fix(&m.queue, j.index)
			select {
			case m.wake <- struct{}{}:
			default:
			}
		}
		m.mu.Unlock()
	}()
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-m.sem }()
	start := time.Now()
	if m.opt.Metrics != nil {
		m.opt.Metrics.lateness.Observe(start.Sub(due).Seconds())
	}
	opt := probe.Options{Timeout: ep.Timeout, Dial: m.opt.Dial, Source: ep.Source, Interface: ep.Interface}
	opt.TLS, opt.App = ep.Layers.Options()
	r := m.opt.Probe(ctx, ep.Target, opt)
	if ctx.Err() != nil && r.Class == probe.Canceled {
		return // shutting down; says nothing about the endpoint
	}
	m.Observe(ctx, LocalSource, ep, start, r)
}

// Observe records one probe result for an endpoint: local probes call it, and
// so can a hub receiving results from remote agents (with their own source).
// It never blocks on the store, the doctor or alerts. The diagnosis a
// transition to down starts ends when ctx does or when Run ends, whichever
// is first: a caller whose ctx ends sooner than the monitor (an HTTP request)
// passes context.WithoutCancel of it.
func (m *Monitor) Observe(ctx context.Context, source string, ep Endpoint, at time.Time, r probe.Result) {
	at = time.UnixMilli(at.UnixMilli()) // the store's resolution, so memory and store agree
	s := sampleFrom(ep, source, at, r)
	if m.opt.Replica != nil {
		m.observeShared(source, ep, s, 0, 0, nil)
		return
	}
	m.mu.Lock()
	k := key{source, ep.Name}
	e := m.entries[k]
	if e == nil {
		if source == LocalSource && m.jobs[ep.Name] == nil {
			m.mu.Unlock()
			return // removed by a reload while the probe ran
		}
		e = &entry{status: Status{Endpoint: ep.Name, Source: source, State: StateUnknown, Since: at}}
		m.entries[k] = e
	}
	if source != LocalSource {
		e.ep = ep
		e.status.Target, e.status.Labels = ep.TargetString(), ep.Labels
	}
	st := &e.status
	st.Last = s
	e.addr = lastAddr(e.addr, r.Addr)
	if s.OK {
		st.Oks, st.Fails = st.Oks+1, 0
	} else {
		st.Oks, st.Fails = 0, st.Fails+1
	}
	from := st.State
	to := from
	switch {
	case s.OK && (from == StateUnknown || from == StateDown && st.Oks >= m.alerts.Rise):
		to = StateUp
	case !s.OK && from != StateDown && st.Fails >= m.alerts.Fall:
		to = StateDown
	}
	if to != from {
		st.State, st.Since = to, at
		if to == StateUp {
			st.Cause = ""
		}
	}
	cause := st.Cause
	m.seq++
	e.seq = m.seq
	m.enqueueLocked(update{st: new(*st), sample: true})
	changed := to != from
	t := Transition{Endpoint: ep.Name, Source: source, Time: at, From: from, To: to, Class: r.Class, Errno: int(r.Errno)}
	if changed {
		if c := m.changeOfLocked(e, to, at); c != nil {
			t.Change = c.Summary
		}
		m.notifyLocked()
		if m.draining {
			// No time for the doctor or alerts; keep the record if there is room.
			m.enqueueLocked(update{transition: &t})
			changed = false
		} else {
			m.wg.Add(1)
		}
	}
	m.mu.Unlock()

	if mt := m.opt.Metrics; mt != nil {
		ps := mt.pair(ep.Name, source)
		ps.probed(s.OK, r.RTT)
		ps.layers(s, r)
		ps.setUp(to)
		if !s.OK {
			ps.failed(r.Class, cmpOr(cause, "undiagnosed"))
		}
		if to != from {
			ps.transitioned(to)
		}
	}
	if changed {
		go m.transition(ctx, ep, t)
	}
}

// transition records a state change, asks the doctor why when it is down,
// and announces it. It runs off the probe path.
func (m *Monitor) transition(ctx context.Context, ep Endpoint, t Transition) {
	defer m.wg.Done()
	ctx, cancel := m.untilStop(ctx)
	defer cancel()
	m.record(update{transition: &t}) // even while shutting down: it was seen
	m.log.Info("state change", "endpoint", t.Endpoint, "source", t.Source, "from", t.From, "to", t.To, "class", t.Class)
	a := Alert{Endpoint: t.Endpoint, Source: t.Source, Target: ep.TargetString(), Labels: ep.Labels,
		State: t.To, Previous: t.From, Time: t.Time, Class: t.Class, Errno: t.Errno, Change: t.Change}
	// The doctor runs here, so it can explain only what this host sees; a
	// pair seen from an agent needs a SourceDiagnoser.
	_, fromSource := m.opt.Diagnoser.(SourceDiagnoser)
	if t.To == StateDown && m.opt.Diagnoser != nil && (t.Source == LocalSource || fromSource) {
		d, ok := m.diagnose(ctx, ep, t)
		if !ok {
			return // shutting down: no time to ask the doctor, nobody to tell
		}
		a.Cause, a.Verdict, a.Findings = d.Cause, d.Verdict, d.Findings
		dt := t
		dt.Diagnosis = &d
		m.record(update{diagnosis: &dt})
		m.mu.Lock()
		if e := m.entries[key{t.Source, t.Endpoint}]; e != nil && e.status.State == StateDown && e.status.Since.Equal(t.Time) {
			e.status.Cause = d.Cause
			m.seq++
			e.seq = m.seq
			m.notifyLocked()
			m.enqueueLocked(update{st: new(e.status)}) // the cause, for restarts
		}
		m.mu.Unlock()
	}
	if m.opt.Notifier != nil && !(t.From == StateUnknown && t.To == StateUp) {
		m.opt.Notifier.Notify(a)
	}
}

// untilStop returns ctx, canceled also when Run begins to end: the monitor
// started the goroutine, so its end is the monitor's to decide, whatever
// context the caller of Observe had.
func (m *Monitor) untilStop(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// diagnose asks the doctor, at most DiagnoseLimit at once; ok is false when
// ctx ended first.
func (m *Monitor) diagnose(ctx context.Context, ep Endpoint, t Transition) (d Diagnosis, ok bool) {
	select {
	case m.diag <- struct{}{}:
	case <-ctx.Done():
		return Diagnosis{}, false
	}
	defer func() { <-m.diag }()
	dctx, cancel := context.WithTimeout(ctx, diagnoseTimeout)
	defer cancel()
	var err error
	if sd, ok := m.opt.Diagnoser.(SourceDiagnoser); ok && t.Source != LocalSource {
		d, err = sd.DiagnoseFrom(dctx, t.Source, ep, t.Class)
	} else {
		d, err = m.opt.Diagnoser.Diagnose(dctx, ep.Target)
	}
	if ctx.Err() != nil {
		return Diagnosis{}, false
	}
	if err != nil {
		m.log.Warn("diagnose", "endpoint", ep.Name, "err", err)
		d.Error = err.Error()
		if d.Cause == "" {
			d.Cause = "diagnosis-failed"
		}
	}
	return d, true
}

// compactor applies retention and downsampling now and then.
func (m *Monitor) compactor(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(compactEvery)
	defer tick.Stop()
	for {
		start := time.Now()
		if r := m.opt.Replica; r != nil && !r.Holds(JobCompact) {
			// Another replica compacts.
		} else if err := m.opt.Store.Compact(ctx, start, m.opt.RawFor, m.opt.Retain); err != nil && ctx.Err() == nil {
			m.log.Error("compact history", "err", err)
		} else {
			m.log.Debug("compacted history", "took", time.Since(start))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// writer batches samples, statuses and state changes into the store.
func (m *Monitor) writer(ctx context.Context) {
	tick := time.NewTicker(m.opt.FlushInterval)
	defer tick.Stop()
	var b Batch
	var lastLog time.Time // of the last line about failing writes
	latest := map[key]Status{}
	var shared []sharedSample
	var waits []*ingestWait
	flush := func() {
		if m.opt.Replica != nil {
			if len(shared) == 0 {
				return
			}
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			began := time.Now()
			res, err := m.opt.Store.writeShared(wctx, shared, m.sharedRules())
			cancel()
			if took := time.Since(began); took > time.Second {
				m.log.Warn("shared store write slow: the replica's answers to agents wait for it",
					"samples", len(shared), "took", took.Round(time.Millisecond))
			}
			if mt := m.opt.Metrics; mt != nil {
				if err != nil {
					mt.writeErrors.Inc()
				} else {
					mt.written.Add(float64(len(shared) - res.Duplicates))
				}
			}
			m.wrote(time.Now(), err, len(shared), &lastLog)
			if err == nil {
				m.applyShared(ctx, res)
			}
			for _, w := range waits {
				w.finish(err)
			}
			shared, waits = shared[:0], waits[:0]
			return
		}
		for _, st := range latest {
			b.Statuses = append(b.Statuses, st)
		}
		if b.Len() == 0 {
			return
		}
		// Write even while shutting down: this is the last batch.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := m.opt.Store.Write(wctx, b)
		cancel()
		if mt := m.opt.Metrics; mt != nil {
			if err != nil {
				mt.writeErrors.Inc()
			} else {
				mt.written.Add(float64(len(b.Samples)))
			}
		}
		m.wrote(time.Now(), err, len(b.Samples), &lastLog)
		if err != nil {
			// State changes, their diagnoses and the latest statuses are
			// few, and are what findings and a restart's state come from:
			// they go with the next batch. Samples are lost.
			b = Batch{Samples: b.Samples[:0], Transitions: newest(b.Transitions), Diagnoses: newest(b.Diagnoses)}
			return
		}
		b = Batch{Samples: b.Samples[:0]}
		clear(latest)
	}
	for {
		select {
		case u, ok := <-m.batch:
			if !ok {
				flush()
				return
			}
			if u.st != nil {
				if u.sample {
					b.Samples = append(b.Samples, u.st.Last)
				}
				latest[key{u.st.Source, u.st.Endpoint}] = *u.st
			}
			if u.transition != nil {
				b.Transitions = append(b.Transitions, *u.transition)
			}
			if u.diagnosis != nil {
				b.Diagnoses = append(b.Diagnoses, *u.diagnosis)
			}
			if u.shared != nil {
				shared = append(shared, *u.shared)
				if u.wait != nil {
					waits = append(waits, u.wait)
				}
			}
			if len(b.Samples) >= m.opt.BatchSize || len(shared) >= m.opt.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// StoreHealth is how the store takes the monitor's writes.
type StoreHealth struct {
	// Healthy is false once every write for Options.StoreGrace has failed.
	Healthy bool
	// Since is the first failed write of the failures going on now; zero
	// when the last write succeeded.
	Since  time.Time
	Failed int   // batches failed since then
	Err    error // the last failure

	samples bool // a failed batch held samples: one without proves nothing of them
}

// String says what fails and since when, e.g. for /healthz.
func (h StoreHealth) String() string {
	if h.Since.IsZero() {
		return "store writes succeed"
	}
	return fmt.Sprintf("%d store writes failed in a row, since %s (%s): %v", h.Failed,
		h.Since.UTC().Format(time.RFC3339), time.Since(h.Since).Round(time.Second), h.Err)
}

// StoreHealth reports whether the store takes the monitor's writes. It is
// unhealthy once every write for Options.StoreGrace has failed, until one
// succeeds; always healthy without a store.
func (m *Monitor) StoreHealth() StoreHealth {
	m.healthMu.Lock()
	h := m.health
	m.healthMu.Unlock()
	h.Healthy = h.Since.IsZero() || time.Since(h.Since) < m.opt.StoreGrace
	return h
}

// wrote records the outcome of a batch write: the store's health, its
// gauge, and the log, which says the first failure at once and then once
// per storeLogEvery while they go on (not once a batch, every second), and
// says when writes recover. Only the writer calls it.
func (m *Monitor) wrote(now time.Time, err error, samples int, lastLog *time.Time) {
	m.healthMu.Lock()
	h := &m.health
	prev := *h
	switch {
	case err == nil && samples == 0 && h.samples:
		// Statuses alone went in: the samples' table may still refuse
		// (a corrupt page, a dropped table). Wait for a batch with samples.
		prev = StoreHealth{} // nothing to log
	case err == nil:
		*h = StoreHealth{}
	default:
		if h.Since.IsZero() {
			h.Since = now
		}
		h.Failed++
		h.Err = err
		h.samples = h.samples || samples > 0
	}
	cur := *h
	m.healthMu.Unlock()
	if mt := m.opt.Metrics; mt != nil {
		mt.storeHealthy.Set(float64(boolInt(cur.Since.IsZero() || now.Sub(cur.Since) < m.opt.StoreGrace)))
	}
	switch {
	case err == nil && !prev.Since.IsZero():
		m.log.Info("store writes succeed again", "failed_batches", prev.Failed,
			"failing_for", now.Sub(prev.Since).Round(time.Millisecond))
	case err != nil && prev.Since.IsZero():
		*lastLog = now
		m.log.Error("store write failed: the batch's samples are lost, its state changes are retried with "+
			"the next; while writes fail this is said once a minute, and after "+shortDuration(m.opt.StoreGrace)+
			" of failures /healthz answers 503 and reach_store_healthy is 0", "samples", samples, "err", err)
	case err != nil && now.Sub(*lastLog) >= storeLogEvery:
		*lastLog = now
		m.log.Error("store writes still fail", "failed_batches", cur.Failed,
			"failing_for", now.Sub(cur.Since).Round(time.Second),
			"healthy", now.Sub(cur.Since) < m.opt.StoreGrace, "err", err)
	}
}

// maxRetried bounds the state changes (and diagnoses) kept for the next
// batch while the store fails: the newest are kept.
const maxRetried = 10_000

func newest(ts []Transition) []Transition {
	return ts[max(0, len(ts)-maxRetried):]
}

// update is one thing for the batch writer to store.
type update struct {
	st         *Status     // the latest status, when set
	sample     bool        // st.Last is a new sample
	transition *Transition // a state change
	diagnosis  *Transition // a diagnosis for a stored state change
	shared     *sharedSample
	wait       *ingestWait // replicas: told when shared is stored
}

// enqueueLocked hands an update to the batch writer, dropping it rather
// than blocking when the store falls behind.
func (m *Monitor) enqueueLocked(u update) {
	if m.opt.Store == nil || m.stopped {
		return
	}
	select {
	case m.batch <- u:
	default:
		if m.opt.Metrics != nil {
			m.opt.Metrics.dropped.Inc()
		}
	}
}

// record hands a state change or diagnosis to the batch writer, waiting for
// room: these are never dropped. Only transition goroutines call it, and Run
// closes the batch only after they end.
func (m *Monitor) record(u update) {
	if m.opt.Store != nil {
		m.batch <- u
	}
}

func (m *Monitor) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Changed returns a channel closed at the next state change (or reload).
func (m *Monitor) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Statuses returns every endpoint's status, sorted by source then name.
func (m *Monitor) Statuses() []Status {
	out, _, _ := m.StatusesSince(0)
	return out
}

// StatusesSince returns the statuses that changed after seq, and the
// sequence number to pass next time. It returns every status, and full,
// for seq 0 or when endpoints were added or removed since seq (a reload):
// the caller's list is then replaced, not updated.
func (m *Monitor) StatusesSince(seq uint64) (sts []Status, next uint64, full bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	full = seq == 0 || seq < m.listSeq
	var out []Status
	for _, e := range m.entries {
		if e.seq > seq || full {
			out = append(out, e.status)
		}
	}
	slices.SortFunc(out, func(a, b Status) int {
		if a.Source != b.Source {
			if a.Source < b.Source {
				return -1
			}
			return 1
		}
		if a.Endpoint < b.Endpoint {
			return -1
		}
		if a.Endpoint > b.Endpoint {
			return 1
		}
		return 0
	})
	return out, m.seq, full
}

// ErrNoEndpoint is returned for an endpoint the monitor does not know.
var ErrNoEndpoint = errors.New("monitor: no such endpoint")

// Status returns one endpoint's status.
func (m *Monitor) Status(source, name string) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[key{source, name}]
	if e == nil {
		return Status{}, fmt.Errorf("%w: %s (source %s)", ErrNoEndpoint, name, source)
	}
	return e.status, nil
}

// Store returns the store the monitor writes to (nil when none).
func (m *Monitor) Store() *Store { return m.opt.Store }
