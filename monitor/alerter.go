package monitor

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AlertKind says what an alert announces.
type AlertKind string

const (
	AlertFiring      AlertKind = "firing"           // the endpoint went down
	AlertResolved    AlertKind = "resolved"         // it came back
	AlertReminder    AlertKind = "reminder"         // it is still down (every RemindEvery)
	AlertFlapping    AlertKind = "flapping"         // it changes state too often to announce each
	AlertFlapStopped AlertKind = "flapping-stopped" // it settled; State is where
)

// Alerter decides which state changes become alerts: it holds back the
// alerts of endpoints whose dependency is down (naming them in the
// dependency's alert instead) or that are in a maintenance window, waits
// Alerts.GroupWait for a dependency's alert to come first, repeats a
// still-down alert every Alerts.RemindEvery, announces a resolved one once
// for each announced down, and reports an endpoint that changes state more
// than Alerts.FlapChanges times in Alerts.FlapWindow as flapping, once,
// instead of each change.
//
// It is deterministic and does no I/O: its inputs are state changes
// (Change) and the time (Tick), its output the alerts to send. Whatever
// holds it (one process, or the one replica holding a lease) feeds it and
// sends what it returns. It is not safe for concurrent use.
type Alerter struct {
	policy  Alerts
	parents map[string][]string // endpoint -> what it depends on
	api     []Window            // windows made through the API
	apiSeq  int
	entries map[key]*alertEntry
}

// alertEntry is what the Alerter knows of one endpoint from one source.
type alertEntry struct {
	last    Alert       // the latest state change
	down    bool        // last.State is down
	due     time.Time   // when a down endpoint's alert may go out (GroupWait)
	fired   bool        // a down alert went out: a resolved one is owed
	sent    time.Time   // when the last down alert or reminder went out
	changes []time.Time // state changes within FlapWindow
	flap    bool        // flapping: changes are not announced
	// flapSent: the flapping alert went out (the endpoint was not held
	// then, or its hold ended first); a flapping-stopped notice is owed.
	flapSent bool
	// seeded: fired is Seed's guess. A change to down that comes after it
	// is the one whose alert was not sent yet (a replica that held the
	// outbox died first): it is announced.
	seeded bool
}

// NewAlerter returns an Alerter for a configuration's alerts and
// endpoints.
func NewAlerter(cfg *Config) *Alerter {
	a := &Alerter{entries: map[key]*alertEntry{}}
	a.SetConfig(cfg)
	return a
}

// SetConfig applies a reloaded configuration; what the Alerter knows of
// each endpoint stays.
func (a *Alerter) SetConfig(cfg *Config) {
	a.policy = cfg.Alerts
	a.parents = map[string][]string{}
	for _, ep := range cfg.Endpoints {
		if len(ep.DependsOn) > 0 {
			a.parents[ep.Name] = ep.DependsOn
		}
	}
}

// Seed tells the Alerter where endpoints stand after a restart (or when a
// replica takes over): those down are taken as announced, so they are
// reminded of and resolved, not announced again; but not those held now
// (a maintenance window, a dependency down), which were never announced:
// they get no resolved alert, and alert when the hold ends. What it knew
// of these endpoints before is dropped: a replica that takes the alerts
// back missed the changes its holder saw meanwhile.
func (a *Alerter) Seed(now time.Time, sts []Status) {
	var seeded []key
	for _, st := range sts {
		k := key{st.Source, st.Endpoint}
		if a.entries[k] == nil && st.State != StateDown {
			continue
		}
		e := &alertEntry{}
		a.entries[k] = e
		if st.State != StateDown {
			continue
		}
		e.last = Alert{Kind: AlertFiring, Endpoint: st.Endpoint, Source: st.Source, Target: st.Target,
			Labels: st.Labels, State: StateDown, Time: st.Since, Since: st.Since, Class: st.Last.Class,
			Errno: st.Last.Errno, Cause: st.Cause}
		e.down, e.sent, e.seeded = true, now, true
		seeded = append(seeded, k)
	}
	// Held is judged once every dependency is known to be down.
	for _, k := range seeded {
		a.entries[k].fired = a.held(k, now) == ""
	}
}

func (a *Alerter) entry(k key) *alertEntry {
	e := a.entries[k]
	if e == nil {
		e = &alertEntry{}
		a.entries[k] = e
	}
	return e
}

// Change takes a state change at now and returns the alerts to send now.
func (a *Alerter) Change(now time.Time, al Alert) []Alert {
	if al.State != StateDown && al.State != StateUp {
		return nil
	}
	k := key{al.Source, al.Endpoint}
	e := a.entry(k)
	wasDown := e.down
	e.down = al.State == StateDown
	if e.down {
		al.Since = al.Time
	} else if wasDown {
		al.Since = e.last.Since
	}
	e.last = al
	var out []Alert
	if a.policy.FlapChanges > 0 && wasDown != e.down {
		e.changes = append(a.recent(e.changes, now), now)
		if !e.flap && len(e.changes) > a.policy.FlapChanges {
			e.flap, e.due = true, time.Time{}
			// Held (a maintenance window, a dependency down), it flaps
			// in silence; Tick announces it if the hold ends first.
			if a.held(k, now) == "" {
				e.flapSent = true
				f := al
				f.Kind = AlertFlapping
				f.Changes = len(e.changes)
				out = append(out, a.finish(k, f))
			}
		}
	}
	if e.flap {
		return out
	}
	if e.down && e.seeded {
		e.fired = false
	}
	e.seeded = false
	if e.down {
		if !e.fired {
			e.due = now.Add(a.policy.GroupWait)
		}
	} else {
		e.due = time.Time{}
		if e.fired {
			e.fired = false
			r := al
			r.Kind = AlertResolved
			out = append(out, a.finish(k, r))
		}
	}
	return append(out, a.release(now)...)
}

// recent keeps the changes within the flap window before now.
func (a *Alerter) recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(now.Add(-a.policy.FlapWindow)) {
		i++
	}
	return ts[i:]
}

// Tick returns the alerts that the passing of time makes due at now: those
// GroupWait held, those whose dependency came back or whose maintenance
// ended while they stayed down, reminders, and flapping that stopped.
func (a *Alerter) Tick(now time.Time) []Alert {
	var out []Alert
	for _, k := range a.keys() {
		e := a.entries[k]
		if !e.flap {
			continue
		}
		e.changes = a.recent(e.changes, now)
		if len(e.changes) > 0 {
			if !e.flapSent && a.held(k, now) == "" { // its hold ended: announce it
				e.flapSent = true
				f := e.last
				f.Kind, f.Time, f.Changes, f.ID = AlertFlapping, now, len(e.changes), 0
				out = append(out, a.finish(k, f))
			}
			continue
		}
		// A whole window without a change: settled.
		e.flap = false
		if !e.flapSent {
			// Its flapping was never announced: it is down (announced
			// by release below once not held) or up again.
			if e.down && !e.fired {
				e.due = now
			} else if !e.down && e.fired {
				e.fired = false
				r := e.last
				r.Kind, r.Time, r.ID = AlertResolved, now, 0
				out = append(out, a.finish(k, r))
			}
			continue
		}
		e.flapSent = false
		s := e.last
		s.Kind = AlertFlapStopped
		s.Time = now
		s.ID = 0 // made by the clock, not a state change: see Alert.ID
		out = append(out, a.finish(k, s))
		if e.down {
			e.fired, e.sent = true, now // the notice says it is down
		} else {
			e.fired = false
		}
	}
	out = append(out, a.release(now)...)
	if a.policy.RemindEvery <= 0 {
		return out
	}
	for _, k := range a.keys() {
		e := a.entries[k]
		if !e.down || !e.fired || e.flap || now.Sub(e.sent) < a.policy.RemindEvery || a.held(k, now) != "" {
			continue
		}
		e.sent = now
		r := e.last
		r.Kind = AlertReminder
		r.Time = now
		r.ID = 0 // the firing alert's id would make a receiver drop it (Alert.ID)
		out = append(out, a.finish(k, r))
	}
	return out
}

// release sends the down alerts that are due and no longer held.
func (a *Alerter) release(now time.Time) []Alert {
	var out []Alert
	for _, k := range a.keys() {
		e := a.entries[k]
		if !e.down || e.fired || e.flap || e.due.After(now) || a.held(k, now) != "" {
			continue
		}
		e.fired, e.sent = true, now
		f := e.last
		f.Kind = AlertFiring
		out = append(out, a.finish(k, f))
	}
	return out
}

// Held says why an endpoint's alerts are held at now ("depends on db,
// which is down", "maintenance nightly"), or "" when they are not.
func (a *Alerter) Held(source, name string, now time.Time) string {
	return a.held(key{source, name}, now)
}

func (a *Alerter) held(k key, now time.Time) string {
	if w, ok := a.window(k.name, now); ok {
		return "maintenance " + w.ID
	}
	if p, ok := a.downAncestor(k, map[key]bool{}); ok {
		if p.name == AgentEndpoint {
			return "the agent of " + p.source + " stopped calling"
		}
		return "depends on " + p.name + ", which is down"
	}
	return ""
}

func (a *Alerter) window(name string, now time.Time) (Window, bool) {
	for _, w := range slices.Concat(a.policy.Maintenance, a.api) {
		if w.Covers(name) && w.Active(now) {
			return w, true
		}
	}
	return Window{}, false
}

// parentKey is where k's dependency p is seen: from k's own source when it
// is watched from there, else by this host.
func (a *Alerter) parentKey(k key, p string) key {
	if _, ok := a.entries[key{k.source, p}]; ok {
		return key{k.source, p}
	}
	return key{LocalSource, p}
}

// AgentEndpoint is the endpoint name under which a hub announces that a
// registered agent stopped calling (its source is the agent).
const AgentEndpoint = "agent"

// parentKeys returns what k depends on: its depends_on, and for a pair an
// agent probes ("db-1:5432"), the agent of its target host: when that host
// is gone, its agent stops calling, and that one alert says so.
func (a *Alerter) parentKeys(k key) []key {
	var out []key
	for _, p := range a.parents[k.name] {
		out = append(out, a.parentKey(k, p))
	}
	if host, _, ok := strings.Cut(k.name, ":"); ok && k.name != AgentEndpoint {
		if hk := (key{host, AgentEndpoint}); a.entries[hk] != nil && hk != k {
			out = append(out, hk)
		}
	}
	return out
}

// downAncestor returns a dependency of k (or of its dependencies) that is
// down. The config refuses cycles; seen guards anyway.
func (a *Alerter) downAncestor(k key, seen map[key]bool) (key, bool) {
	for _, pk := range a.parentKeys(k) {
		if seen[pk] {
			continue
		}
		seen[pk] = true
		if e := a.entries[pk]; e != nil && e.down {
			return pk, true
		}
		if anc, ok := a.downAncestor(pk, seen); ok {
			return anc, true
		}
	}
	return key{}, false
}

// dependents lists the endpoints down behind k: down, with k as a down
// ancestor.
func (a *Alerter) dependents(k key) []string {
	var out []string
	for _, ck := range a.keys() {
		e := a.entries[ck]
		if ck == k || !e.down || !a.dependsOn(ck, k, map[key]bool{}) {
			continue
		}
		name := ck.name
		if ck.source != LocalSource {
			name += " (from " + ck.source + ")"
		}
		out = append(out, name)
	}
	return out
}

func (a *Alerter) dependsOn(ck, k key, seen map[key]bool) bool {
	for _, pk := range a.parentKeys(ck) {
		if seen[pk] {
			continue
		}
		seen[pk] = true
		if pk == k || a.dependsOn(pk, k, seen) {
			return true
		}
	}
	return false
}

// finish fills what every alert carries: its dependents and its text.
func (a *Alerter) finish(k key, al Alert) Alert {
	if al.State == StateDown && al.Kind != AlertFlapping {
		al.Dependents = a.dependents(k)
	}
	al.Text = al.Summary()
	return al
}

// keys returns the entries' keys in a stable order, so the alerts of one
// call come out the same way each time.
func (a *Alerter) keys() []key {
	ks := make([]key, 0, len(a.entries))
	for k := range a.entries {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(x, y key) int {
		return cmp.Or(strings.Compare(x.source, y.source), strings.Compare(x.name, y.name))
	})
	return ks
}

// Active returns what should be firing now, for sinks that keep a set of
// firing alerts (Alertmanager): each endpoint down and announced, and each
// flapping one.
func (a *Alerter) Active(now time.Time) []Alert {
	var out []Alert
	for _, k := range a.keys() {
		e := a.entries[k]
		switch {
		case e.flap && e.flapSent:
			f := e.last
			f.Kind, f.Changes = AlertFlapping, len(e.changes)
			out = append(out, a.finish(k, f))
		case e.down && e.fired:
			f := e.last
			f.Kind = AlertFiring
			out = append(out, a.finish(k, f))
		}
	}
	return out
}

// Windows returns the maintenance windows, the config's then the API's.
func (a *Alerter) Windows() []Window { return slices.Concat(a.policy.Maintenance, a.api) }

// AddWindow adds a one-off window (from the API) and returns it with its
// id.
func (a *Alerter) AddWindow(now time.Time, w Window) (Window, error) {
	if err := CheckWindow(w, now); err != nil {
		return Window{}, err
	}
	a.apiSeq++
	w.ID, w.From, w.For, w.Days = fmt.Sprintf("api-%d", a.apiSeq), WindowAPI, 0, nil
	a.api = append(a.api, w)
	return w, nil
}

// SetAPIWindows replaces the API's windows with ws (read from a store
// that keeps them for every replica).
func (a *Alerter) SetAPIWindows(ws []Window) { a.api = slices.Clone(ws) }

// ErrNoWindow is returned for a window the Alerter does not hold.
var ErrNoWindow = fmt.Errorf("monitor: no such maintenance window")

// RemoveWindow ends a window made through the API; the config's stay
// until the config changes.
func (a *Alerter) RemoveWindow(id string) error {
	i := slices.IndexFunc(a.api, func(w Window) bool { return w.ID == id })
	if i < 0 {
		if slices.ContainsFunc(a.policy.Maintenance, func(w Window) bool { return w.ID == id }) {
			return fmt.Errorf("%w: %q is in the config file; remove it there and reload", ErrNoWindow, id)
		}
		return fmt.Errorf("%w: %q", ErrNoWindow, id)
	}
	a.api = slices.Delete(a.api, i, i+1)
	return nil
}

// Summary is the alert as one line for people (the webhook's text field,
// which chat webhooks show).
func (al Alert) Summary() string {
	name := al.Endpoint
	if al.Source != "" && al.Source != LocalSource {
		name += " (seen from " + al.Source + ")"
	}
	why := string(al.Class)
	if al.Cause != "" {
		why += ", " + al.Cause
	}
	var b strings.Builder
	switch al.Kind {
	case AlertResolved:
		fmt.Fprintf(&b, "RESOLVED: %s is up again", name)
		if !al.Since.IsZero() {
			fmt.Fprintf(&b, " after %s down", al.Time.Sub(al.Since).Round(time.Second))
		}
	case AlertFlapping:
		fmt.Fprintf(&b, "FLAPPING: %s changed state %d times recently; its changes are not announced until it settles", name, al.Changes)
	case AlertFlapStopped:
		fmt.Fprintf(&b, "SETTLED: %s stopped flapping; it is %s", name, al.State)
	default:
		if al.Kind == AlertReminder {
			fmt.Fprintf(&b, "STILL DOWN: %s, for %s (%s)", name, al.Time.Sub(al.Since).Round(time.Second), why)
		} else {
			fmt.Fprintf(&b, "DOWN: %s (%s)", name, why)
		}
		if len(al.Findings) > 0 {
			b.WriteString(": " + al.Findings[0].Issue)
		} else if al.Verdict != "" {
			b.WriteString(": " + al.Verdict)
		}
		if len(al.Findings) > 0 && al.Findings[0].Fix != "" {
			b.WriteString(". Fix: " + al.Findings[0].Fix)
		}
	}
	if n := len(al.Dependents); n > 0 {
		s := "s"
		if n == 1 {
			s = ""
		}
		fmt.Fprintf(&b, "; and %d dependent endpoint%s (%s)", n, s, strings.Join(al.Dependents, ", "))
	}
	return b.String()
}
