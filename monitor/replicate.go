package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/reach-tools/reach/probe"
)

// Report is one result seen from elsewhere (an agent), as Ingest takes it.
type Report struct {
	Endpoint Endpoint
	Time     time.Time
	Result   probe.Result
	// Run and Seq are the sender's run and the result's number in it (the
	// agent protocol's Batch.Run and Seq): replicas store a result once by
	// them, whichever replica it reached and however often. 0: unnumbered.
	Run int64
	Seq uint64
}

// ErrBehind is returned by Ingest when the store's writer has no room: the
// sender should keep its results and send them again.
var ErrBehind = errors.New("monitor: the store's writer is behind")

// Ingest records results seen from source. A monitor that runs alone
// observes each (Observe) and returns. A replica returns once the store
// has them, or with an error: then none may be counted as stored, and the
// sender, keeping them, sends them again, to this or another replica (their
// numbers keep them from being stored twice). So a replica that dies after
// answering has lost nothing.
func (m *Monitor) Ingest(ctx context.Context, source string, rs []Report) error {
	if m.opt.Replica == nil {
		for _, r := range rs {
			m.Observe(context.WithoutCancel(ctx), source, r.Endpoint, r.Time, r.Result)
		}
		return nil
	}
	w := &ingestWait{left: len(rs), done: make(chan struct{})}
	if len(rs) == 0 {
		return nil
	}
	for i, r := range rs {
		at := time.UnixMilli(r.Time.UnixMilli())
		if err := m.observeShared(source, r.Endpoint, sampleFrom(r.Endpoint, source, at, r.Result), r.Run, r.Seq, w); err != nil {
			w.finish(err)
			w.drop(len(rs) - i - 1)
			break
		}
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ingestWait is told of each of an Ingest's results as the writer stores
// it (or fails to).
type ingestWait struct {
	mu   sync.Mutex
	left int
	err  error
	done chan struct{}
}

func (w *ingestWait) finish(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.left <= 0 {
		return
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	if w.left--; w.left == 0 {
		close(w.done)
	}
}

// drop counts n results that were never queued.
func (w *ingestWait) drop(n int) {
	for range n {
		w.finish(nil)
	}
}

// observeShared queues a sample for the shared write; the states follow
// from what the store holds (applyShared). It keeps the endpoint of a
// remote pair for its alerts and diagnoses.
func (m *Monitor) observeShared(source string, ep Endpoint, s Sample, run int64, seq uint64, w *ingestWait) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{source, ep.Name}
	e := m.entries[k]
	if e == nil {
		if source == LocalSource && m.jobs[ep.Name] == nil {
			return nil // removed by a reload while the probe ran
		}
		e = &entry{status: Status{Endpoint: ep.Name, Source: source, State: StateUnknown, Since: s.Time}}
		m.entries[k] = e
	}
	if source != LocalSource {
		e.ep = ep
		e.status.Target, e.status.Labels = ep.Target.String(), ep.Labels
	}
	if mt := m.opt.Metrics; mt != nil {
		ps := mt.pair(ep.Name, source)
		ps.probed(s.OK, s.RTT)
		if !s.OK {
			ps.failed(s.Class, cmpOr(e.status.Cause, "undiagnosed"))
		}
	}
	if m.stopped {
		return fmt.Errorf("%w: the monitor is stopping", ErrBehind)
	}
	select {
	case m.batch <- update{shared: &sharedSample{Sample: s, Target: ep.Target.String(), Run: run, Seq: seq}, wait: w}:
		return nil
	default:
		if m.opt.Metrics != nil {
			m.opt.Metrics.dropped.Inc()
		}
		return ErrBehind
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sharedRules gives the writer rise, fall and each state change's alert.
func (m *Monitor) sharedRules() sharedRules {
	m.mu.Lock()
	rise, fall := m.alerts.Rise, m.alerts.Fall
	m.mu.Unlock()
	// Alert may be called again for a transaction tried again: it counts
	// nothing (applyShared counts a change's effects once it is stored).
	return sharedRules{Rise: rise, Fall: fall, Alert: func(t Transition) (Alert, bool, bool) {
		m.mu.Lock()
		e := m.entries[key{t.Source, t.Endpoint}]
		var ep Endpoint
		var change string
		if e != nil {
			ep = e.ep
			if c := changeFor(e, t.Time); c != nil {
				change = c.Summary
			}
		}
		m.mu.Unlock()
		if t.From == StateUnknown && t.To == StateUp {
			return Alert{Change: change}, false, false
		}
		a := Alert{Endpoint: t.Endpoint, Source: t.Source, Target: ep.Target.String(), Labels: ep.Labels,
			State: t.To, Previous: t.From, Time: t.Time, Class: t.Class, Errno: t.Errno, Change: change}
		return a, true, !m.diagnosable(t)
	}}
}

// diagnosable says whether a state change gets a diagnosis before its alert.
func (m *Monitor) diagnosable(t Transition) bool {
	_, fromSource := m.opt.Diagnoser.(SourceDiagnoser)
	return t.To == StateDown && m.opt.Diagnoser != nil && (t.Source == LocalSource || fromSource)
}

// setShared takes a stored status into memory unless memory already has a
// later revision, or the same one with as new a last sample; m.mu is held.
func (m *Monitor) setShared(st sharedStatus) {
	k := key{st.Source, st.Endpoint}
	e := m.entries[k]
	if e == nil {
		if st.Source == LocalSource && m.jobs[st.Endpoint] == nil {
			return // not in this replica's configuration
		}
		e = &entry{}
		m.entries[k] = e
	}
	// A write that gave the status no new revision still carries its last
	// sample (needsRevision): newer than memory's, it is taken.
	if e.rev > st.Rev || e.rev == st.Rev && !st.Last.Time.After(e.status.Last.Time) {
		return
	}
	target, labels := e.status.Target, e.status.Labels
	e.status, e.rev = st.Status, st.Rev
	if e.ep.Name != "" {
		e.status.Target, e.status.Labels = e.ep.Target.String(), e.ep.Labels
	} else if target != "" {
		e.status.Target, e.status.Labels = target, labels
	}
	m.seq++
	e.seq = m.seq
	if mt := m.opt.Metrics; mt != nil {
		mt.pair(st.Endpoint, st.Source).setUp(st.State)
	}
}

// applyShared takes what a shared write stored into memory, and starts each
// state change's diagnosis.
func (m *Monitor) applyShared(ctx context.Context, res sharedResult) {
	m.mu.Lock()
	for _, st := range res.Statuses {
		m.setShared(st)
	}
	var diag []Transition
	for _, t := range res.Transitions {
		if e := m.entries[key{t.Source, t.Endpoint}]; e != nil && t.Change != "" {
			m.changeOfLocked(e, t.To, t.Time)
		}
		if mt := m.opt.Metrics; mt != nil {
			mt.pair(t.Endpoint, t.Source).transitioned(t.To)
		}
		m.log.Info("state change", "endpoint", t.Endpoint, "source", t.Source, "from", t.From, "to", t.To,
			"class", t.Class, "replica", m.opt.Replica.ID())
		if m.diagnosable(t) && !m.draining {
			m.wg.Add(1)
			diag = append(diag, t)
		}
	}
	if len(res.Statuses) > 0 {
		m.notifyLocked()
	}
	m.mu.Unlock()
	for _, t := range diag {
		go m.diagnoseShared(ctx, t)
	}
}

// diagnoseShared asks the doctor about a stored state change to down and
// completes its queued alert. A replica that dies first leaves the alert
// to be sent without the diagnosis.
func (m *Monitor) diagnoseShared(ctx context.Context, t Transition) {
	defer m.wg.Done()
	ctx, cancel := m.untilStop(ctx)
	defer cancel()
	m.mu.Lock()
	var ep Endpoint
	if e := m.entries[key{t.Source, t.Endpoint}]; e != nil {
		ep = e.ep
	}
	m.mu.Unlock()
	d, ok := m.diagnose(ctx, ep, t)
	if !ok {
		return
	}
	t.Diagnosis = &d
	a := Alert{Endpoint: t.Endpoint, Source: t.Source, Target: ep.Target.String(), Labels: ep.Labels,
		State: t.To, Previous: t.From, Time: t.Time, Class: t.Class, Errno: t.Errno,
		Cause: d.Cause, Verdict: d.Verdict, Findings: d.Findings, Change: t.Change}
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	rev, err := m.opt.Store.recordDiagnosis(wctx, t, a)
	wcancel()
	if err != nil {
		m.log.Error("store diagnosis; its alert goes without it", "endpoint", t.Endpoint, "err", err)
		return
	}
	if rev == 0 {
		return
	}
	m.mu.Lock()
	if e := m.entries[key{t.Source, t.Endpoint}]; e != nil && e.rev < rev {
		e.status.Cause, e.rev = d.Cause, rev
		m.seq++
		e.seq = m.seq
		m.notifyLocked()
	}
	m.mu.Unlock()
}

// poll reads what the other replicas stored, every FlushInterval.
func (m *Monitor) poll(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.opt.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sts, err := m.opt.Store.statesSince(ctx, m.pollRev)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("read the replicas' states", "err", err)
			}
			continue
		}
		if len(sts) == 0 {
			continue
		}
		m.mu.Lock()
		for _, st := range sts {
			m.setShared(st)
			m.pollRev = max(m.pollRev, st.Rev)
		}
		m.notifyLocked()
		m.mu.Unlock()
	}
}

// sendAlerts sends the queued alerts while this replica holds JobAlerts.
func (m *Monitor) sendAlerts(ctx context.Context) {
	defer m.wg.Done()
	r := m.opt.Replica
	d, ok := m.opt.Notifier.(Deliverer)
	if !ok && m.opt.Notifier != nil {
		d = notifyDeliverer{m.opt.Notifier}
	}
	if d == nil {
		d = notifyDeliverer{}
	}
	readyAfter := diagnoseTimeout + 2*r.Interval()
	t := time.NewTicker(max(r.Interval()/4, 50*time.Millisecond))
	defer t.Stop()
	holds := func() bool { return ctx.Err() == nil && r.Holds(JobAlerts) }
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !holds() {
			continue
		}
		n, err := m.opt.Store.sendQueued(ctx, r.ID(), d, readyAfter, holds)
		if err != nil && ctx.Err() == nil {
			m.log.Error("sending queued alerts failed; they stay queued and are tried again", "sent", n, "err", err)
		}
	}
}

// notifyDeliverer hands alerts to a Notifier that cannot say when they are
// delivered (nil: to nobody).
type notifyDeliverer struct{ n Notifier }

func (d notifyDeliverer) Deliver(_ context.Context, a Alert) error {
	if d.n != nil {
		d.n.Notify(a)
	}
	return nil
}
