package monitor

import (
	"context"
	"sync"
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
		p.mu.Lock()
		var out []Alert
		if p.holds == nil || p.holds() {
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

// AddWindow adds a one-off window (see Alerter.AddWindow).
func (p *Alerting) AddWindow(w Window) (Window, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.AddWindow(p.now(), w)
}

// RemoveWindow ends a window made through the API.
func (p *Alerting) RemoveWindow(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.RemoveWindow(id)
}

// Held says why an endpoint's alerts are held now, or "".
func (p *Alerting) Held(source, name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.Held(source, name, p.now())
}
