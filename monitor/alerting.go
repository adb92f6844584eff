package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Alerting runs an Alerter in this process: as the monitor's Notifier it
// feeds the Alerter state changes, Run feeds it the time, and what comes
// out goes to the sinks (a Webhook, an Alertmanager). Safe for concurrent
// use.
type Alerting struct {
	mu    sync.Mutex
	a     *Alerter
	sinks []Notifier
	now   func() time.Time
	// With replicas, only the holder of the alerts' lease runs the
	// Alerter's clock (reminders, windows); holds says whether this one
	// does, and statuses seeds it when it takes over.
	holds    func() bool
	statuses func() []Status
	holding  bool
	pending  map[int64][]Alert // by outbox id: what Deliver has still to send
	// store, when set, keeps the API's windows (see UseStore); reads
	// numbers each read of it, applied the newest read applied, so an
	// older read finishing late does not undo a newer one.
	store   *Store
	log     *slog.Logger
	reads   atomic.Uint64
	applied uint64
	pruned  time.Time
}

// windowOp bounds a read or write of the windows in the store.
const windowOp = 5 * time.Second

// UseStore keeps the windows made through the API in s instead of this
// process's memory: they outlive a restart, every replica on s lists them,
// and the Alerter reads them again before each decision (a state change,
// each tick), so a window posted to any replica holds the alerts of the
// one that sends them. Expired windows are pruned by the one running the
// Alerter's clock.
func (p *Alerting) UseStore(ctx context.Context, s *Store, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p.mu.Lock()
	p.store, p.log = s, log
	p.mu.Unlock()
	return p.refresh(ctx)
}

// refresh reads the API's windows from the store into the Alerter.
func (p *Alerting) refresh(ctx context.Context) error {
	p.mu.Lock()
	s := p.store
	p.mu.Unlock()
	if s == nil {
		return nil
	}
	n := p.reads.Add(1)
	ws, err := s.Windows(ctx, p.now())
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > p.applied {
		p.a.SetAPIWindows(ws)
		p.applied = n
	}
	return nil
}

// refreshOrKeep refreshes, keeping the windows last read when the store
// fails (they are logged).
func (p *Alerting) refreshOrKeep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, windowOp)
	defer cancel()
	if err := p.refresh(ctx); err != nil {
		p.log.Warn("cannot read the maintenance windows from the store; using those read before", "err", err)
	}
}

// NewAlerting returns an Alerting for cfg's alerts that tells sinks; now
// is the clock (nil: time.Now).
func NewAlerting(cfg *Config, now func() time.Time, sinks ...Notifier) *Alerting {
	if now == nil {
		now = time.Now
	}
	return &Alerting{a: NewAlerter(cfg), sinks: sinks, now: now, holding: true, pending: map[int64][]Alert{}}
}

// Lease makes the Alerter's clock run only while holds says this process
// holds the alerts' lease (a replica's JobAlerts); on taking it, the
// Alerter is seeded from statuses (the shared store's), so what is down is
// reminded of and resolved by the new holder.
func (p *Alerting) Lease(holds func() bool, statuses func() []Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holds, p.statuses, p.holding = holds, statuses, false
}

// Holding reports whether this process runs the Alerter's clock now.
func (p *Alerting) Holding() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holding
}

// Deliver implements Deliverer, for the replicas' outbox: the state change
// goes through the Alerter once (by its outbox id), and what comes out is
// delivered to the sinks that can say so (the webhook) before it returns;
// after a failure, a retry of the same id sends what is left, not the
// Alerter's verdict again.
func (p *Alerting) Deliver(ctx context.Context, al Alert) error {
	p.refreshOrKeep(ctx)
	p.mu.Lock()
	out, ok := p.pending[al.ID]
	if !ok {
		out = p.a.Change(p.now(), al)
	}
	p.mu.Unlock()
	for i, x := range out {
		for _, s := range p.sinks {
			d, ok := s.(Deliverer)
			if !ok {
				s.Notify(x)
				continue
			}
			if err := d.Deliver(ctx, x); err != nil {
				p.mu.Lock()
				p.pending[al.ID] = out[i:]
				p.mu.Unlock()
				return err
			}
		}
	}
	p.mu.Lock()
	delete(p.pending, al.ID)
	p.mu.Unlock()
	return nil
}

// Notify implements Notifier: a state change from the monitor.
func (p *Alerting) Notify(al Alert) {
	p.refreshOrKeep(context.Background())
	p.mu.Lock()
	out := p.a.Change(p.now(), al)
	p.mu.Unlock()
	p.send(out)
}

func (p *Alerting) send(out []Alert) {
	for _, al := range out {
		for _, s := range p.sinks {
			s.Notify(al)
		}
	}
}

// alertTick is how often the time is fed to the Alerter: reminders,
// group_wait and windows are in seconds at best.
const alertTick = time.Second

// Run feeds the Alerter the time until ctx ends.
func (p *Alerting) Run(ctx context.Context) {
	t := time.NewTicker(alertTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.refreshOrKeep(ctx)
		p.mu.Lock()
		var out []Alert
		if p.holds == nil || p.holds() {
			p.pruneLocked(ctx)
			if !p.holding && p.statuses != nil {
				p.a.Seed(p.now(), p.statuses())
			}
			p.holding = true
			out = p.a.Tick(p.now())
		} else {
			p.holding = false
		}
		p.mu.Unlock()
		p.send(out)
	}
}

// pruneEvery is how often the holder deletes expired windows.
const pruneEvery = time.Minute

// pruneLocked deletes the store's expired windows, at most once per
// pruneEvery, in the background (p.mu is held).
func (p *Alerting) pruneLocked(ctx context.Context) {
	now := p.now()
	if p.store == nil || now.Sub(p.pruned) < pruneEvery {
		return
	}
	p.pruned = now
	s, log := p.store, p.log
	go func() {
		ctx, cancel := context.WithTimeout(ctx, windowOp)
		defer cancel()
		if n, err := s.PruneWindows(ctx, now); err != nil {
			log.Warn("cannot prune expired maintenance windows", "err", err)
		} else if n > 0 {
			log.Info("pruned expired maintenance windows", "n", n)
		}
	}()
}

// SetConfig applies a reloaded configuration.
func (p *Alerting) SetConfig(cfg *Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.a.SetConfig(cfg)
}

// Seed tells the Alerter where endpoints stand at start (see
// Alerter.Seed).
func (p *Alerting) Seed(sts []Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.a.Seed(p.now(), sts)
}

// Active returns what should be firing now (see Alerter.Active).
func (p *Alerting) Active() []Alert {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.Active(p.now())
}

// WindowView is a maintenance window as the API shows it.
type WindowView struct {
	Window
	Zone        string    `json:"zone,omitempty"`
	Description string    `json:"description"`
	Active      bool      `json:"active"`
	ActiveUntil time.Time `json:"active_until,omitzero"`
	Next        time.Time `json:"next,omitzero"` // the next start, when not active
}

// Windows lists the maintenance windows, the config's then the API's.
func (p *Alerting) Windows() []WindowView {
	p.refreshOrKeep(context.Background())
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var out []WindowView
	for _, w := range p.a.Windows() {
		v := WindowView{Window: w, Description: w.String()}
		if w.Recurring() {
			v.Zone = w.zone().String()
		}
		if s, e := w.Current(now); !s.IsZero() {
			v.Active, v.ActiveUntil = true, e
		} else {
			v.Next = w.Next(now)
		}
		out = append(out, v)
	}
	return out
}

// AddWindow adds a one-off window (see Alerter.AddWindow); with a store,
// it is kept there.
func (p *Alerting) AddWindow(w Window) (Window, error) {
	p.mu.Lock()
	s, now := p.store, p.now()
	if s == nil {
		defer p.mu.Unlock()
		return p.a.AddWindow(now, w)
	}
	p.mu.Unlock()
	if err := CheckWindow(w, now); err != nil {
		return Window{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), windowOp)
	defer cancel()
	w, err := s.PutWindow(ctx, w)
	if err != nil {
		return Window{}, err
	}
	p.refreshOrKeep(ctx)
	return w, nil
}

// RemoveWindow ends a window made through the API.
func (p *Alerting) RemoveWindow(id string) error {
	p.mu.Lock()
	s := p.store
	if s == nil {
		defer p.mu.Unlock()
		return p.a.RemoveWindow(id)
	}
	inConfig := slices.ContainsFunc(p.a.policy.Maintenance, func(w Window) bool { return w.ID == id })
	p.mu.Unlock()
	if inConfig {
		return fmt.Errorf("%w: %q is in the config file; remove it there and reload", ErrNoWindow, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), windowOp)
	defer cancel()
	ok, err := s.DeleteWindow(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoWindow, id)
	}
	p.refreshOrKeep(ctx)
	return nil
}

// Held says why an endpoint's alerts are held now, or "" (see HeldIn).
func (p *Alerting) Held(source, name string) string {
	p.mu.Lock()
	statuses, holding := p.statuses, p.holding
	p.mu.Unlock()
	sts := []Status{{Source: source, Endpoint: name}}
	if !holding && statuses != nil {
		sts = statuses()
	}
	held := p.HeldIn(sts)
	for i, st := range sts {
		if st.Source == source && st.Endpoint == name {
			return held[i]
		}
	}
	return ""
}

// HeldIn says, for each of sts, why its alerts are held now ("" when they
// are not). The process that runs the Alerter asks it; a replica that does
// not (its Alerter sees no state changes) judges by sts, the statuses it
// shows, so that its dashboard too marks an endpoint held by a dependency
// that is down, not only by a window.
func (p *Alerting) HeldIn(sts []Status) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	a := p.a
	if !p.holding {
		a = &Alerter{policy: p.a.policy, parents: p.a.parents, api: p.a.api, entries: map[key]*alertEntry{}}
		a.Seed(now, sts)
	}
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = a.held(key{st.Source, st.Endpoint}, now)
	}
	return out
}
