package monitor

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// alerting reads the alerts: section's fields beyond webhook, rise and fall.
func (p *configParser) alerting(m map[string]*yaml.Node, a *Alerts) {
	if v := m["alertmanager"]; v != nil {
		a.Alertmanager = p.webhook(v, "alerts.alertmanager")
	}
	if v := m["resend_every"]; v != nil {
		a.ResendEvery = p.duration(v, "alerts.resend_every", time.Second, 4*time.Minute)
	}
	if v := m["dashboard_url"]; v != nil {
		a.DashboardURL = p.webhook(v, "alerts.dashboard_url")
	}
	if v := m["group_wait"]; v != nil {
		a.GroupWait = p.duration(v, "alerts.group_wait", 0, time.Hour)
	}
	if v := m["remind_every"]; v != nil {
		a.RemindEvery = p.duration(v, "alerts.remind_every", time.Second, MaxWindow)
	}
	if v := m["flapping"]; v != nil {
		fm := p.mapping(v, "alerts.flapping", "changes", "window")
		if c := fm["changes"]; c != nil {
			a.FlapChanges = p.count(c, "alerts.flapping.changes")
		} else if fm != nil {
			p.errf(v, "alerts.flapping.changes", "missing; say how many state changes make an endpoint flap, e.g. changes: 5")
		}
		if w := fm["window"]; w != nil {
			a.FlapWindow = p.duration(w, "alerts.flapping.window", time.Second, 24*time.Hour)
		} else if fm != nil {
			p.errf(v, "alerts.flapping.window", "missing; say within how long, e.g. window: 10m")
		}
	}
	if v := m["maintenance"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			p.errf(v, "alerts.maintenance", "want a list of windows (lines starting with '- name:'), got %s", kindName(v))
			return
		}
		seen := map[string]int{}
		for i, n := range v.Content {
			field := fmt.Sprintf("alerts.maintenance[%d]", i)
			w, ok := p.window(n, field)
			if line, dup := seen[w.ID]; dup && w.ID != "" {
				p.errf(n, join(field, "name"), "%q is already used on line %d; names must be unique", w.ID, line)
				continue
			}
			seen[w.ID] = n.Line
			if ok {
				a.Maintenance = append(a.Maintenance, w)
			}
		}
	}
}

var clock = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

// window reads one maintenance window.
func (p *configParser) window(n *yaml.Node, field string) (Window, bool) {
	before := len(p.errs)
	m := p.mapping(n, field, "name", "reason", "endpoints", "start", "end", "days", "at", "for", "zone")
	if m == nil {
		return Window{}, false
	}
	w := Window{From: WindowConfig, Zone: time.UTC}
	if m["name"] == nil {
		p.errf(n, join(field, "name"), "missing; every window needs a name (the dashboard and logs show it)")
	} else if v := p.scalar(m["name"], n, join(field, "name")); v != nil {
		w.ID = v.Value
	}
	if v := m["reason"]; v != nil {
		w.Reason = v.Value
	}
	if v := m["endpoints"]; v != nil {
		w.Endpoints = p.names(v, join(field, "endpoints"))
		p.covers = append(p.covers, windowNames{v, join(field, "endpoints"), w.Endpoints})
	}
	if v := m["zone"]; v != nil {
		loc, err := time.LoadLocation(v.Value)
		if v.Kind != yaml.ScalarNode || v.Value == "" || v.Value == "Local" || err != nil {
			p.errf(v, join(field, "zone"), "%s is not an IANA time zone; write one such as Europe/Berlin, "+
				"America/New_York or UTC", kindName(v))
		} else {
			w.Zone = loc
		}
	}
	oneOff := m["start"] != nil || m["end"] != nil
	recurring := m["at"] != nil || m["for"] != nil || m["days"] != nil
	switch {
	case oneOff && recurring:
		p.errf(n, field, "a window is one-off (start, end) or recurring (days, at, for), not both")
	case oneOff:
		for _, f := range []string{"start", "end"} {
			if m[f] == nil {
				p.errf(n, join(field, f), "missing; a one-off window needs a start and an end")
				continue
			}
			v := p.scalar(m[f], n, join(field, f))
			if v == nil {
				continue
			}
			t, err := ParseWindowTime(v.Value, w.Zone)
			if err != nil {
				p.errf(v, join(field, f), "%v", err)
				continue
			}
			if f == "start" {
				w.Start = t
			} else {
				w.End = t
			}
		}
		if !w.Start.IsZero() && !w.End.IsZero() {
			if d := w.End.Sub(w.Start); d <= 0 {
				p.errf(m["end"], join(field, "end"), "%s is not after the start %s", w.End.Format(time.RFC3339), w.Start.Format(time.RFC3339))
			} else if d > MaxWindow {
				p.errf(m["end"], join(field, "end"), "the window lasts %s, more than %s; fix its end or split it", shortDuration(d), shortDuration(MaxWindow))
			}
		}
	case recurring:
		if m["at"] == nil {
			p.errf(n, join(field, "at"), "missing; say when each occurrence starts, e.g. at: \"02:00\"")
		} else if v := p.scalar(m["at"], n, join(field, "at")); v != nil {
			c := clock.FindStringSubmatch(v.Value)
			if c == nil {
				p.errf(v, join(field, "at"), "%q: want a wall-clock time HH:MM, 00:00 to 23:59, such as \"02:00\"", v.Value)
			} else {
				h, _ := strconv.Atoi(c[1])
				mi, _ := strconv.Atoi(c[2])
				w.At = h*60 + mi
			}
		}
		if v := m["for"]; v == nil {
			p.errf(n, join(field, "for"), "missing; say how long each occurrence lasts, e.g. for: 2h")
		} else {
			w.For = p.duration(v, join(field, "for"), time.Minute, MaxWindow)
		}
		if v := m["days"]; v != nil {
			for _, d := range p.names(v, join(field, "days")) {
				wd, ok := weekdays[strings.ToLower(d)]
				if !ok {
					p.errf(v, join(field, "days"), "%q is not a day; write mon, tue, wed, thu, fri, sat or sun", d)
					continue
				}
				if !slices.Contains(w.Days, wd) {
					w.Days = append(w.Days, wd)
				}
			}
		}
	default:
		p.errf(n, field, "say when: start and end for a one-off window, or days, at and for for a recurring one")
	}
	return w, len(p.errs) == before
}

// names reads a list of plain names (a YAML list, or one name).
func (p *configParser) names(v *yaml.Node, field string) []string {
	if v.Kind == yaml.ScalarNode && v.Value != "" {
		return []string{v.Value}
	}
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.errf(v, field, "want a list of names such as [db, cache], got %s", kindName(v))
		return nil
	}
	var out []string
	for _, n := range v.Content {
		if n.Kind != yaml.ScalarNode || n.Value == "" {
			p.errf(n, field, "want a name, got %s", kindName(n))
			continue
		}
		out = append(out, n.Value)
	}
	return out
}

// dependencies checks every depends_on: each names a watched endpoint, and
// no endpoint depends on itself, directly or through others.
func (p *configParser) dependencies(cfg *Config, eps *yaml.Node) {
	lines := map[string]*yaml.Node{} // endpoint -> its depends_on node
	fields := map[string]string{}
	names := map[string]bool{}
	for j, n := range eps.Content {
		var name, deps *yaml.Node
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			switch n.Content[i].Value {
			case "name":
				name = n.Content[i+1]
			case "depends_on":
				deps = n.Content[i+1]
			}
		}
		if name != nil && name.Kind == yaml.ScalarNode {
			names[name.Value] = true
			if deps != nil {
				lines[name.Value] = deps
				fields[name.Value] = fmt.Sprintf("endpoints[%d].depends_on", j)
			}
		}
	}
	for _, ep := range cfg.Endpoints {
		for _, d := range ep.DependsOn {
			switch {
			case d == ep.Name:
				p.errf(lines[ep.Name], fields[ep.Name], "%q depends on itself; remove it", d)
			case !names[d]:
				p.errf(lines[ep.Name], fields[ep.Name], "%q is not an endpoint of this file (%s); "+
					"name one of its endpoints", d, knownNames(cfg))
			}
		}
	}
	// A cycle (a needs b, b needs a) would hold each one's alert for the
	// other's: refuse it, naming the loop once.
	parents := map[string][]string{}
	for _, ep := range cfg.Endpoints {
		parents[ep.Name] = ep.DependsOn
	}
	state := map[string]int{} // 1: on the path, 2: done
	var path []string
	reported := false
	var visit func(string)
	visit = func(n string) {
		state[n] = 1
		path = append(path, n)
		for _, d := range parents[n] {
			switch {
			case d == n:
			case state[d] == 1 && !reported:
				i := slices.Index(path, d)
				loop := append(slices.Clone(path[i:]), d)
				p.errf(lines[n], fields[n], "dependencies form a cycle: %s; an endpoint cannot need what "+
					"needs it: remove one of these depends_on", strings.Join(loop, " → "))
				reported = true
			case state[d] == 0:
				visit(d)
			}
		}
		path = path[:len(path)-1]
		state[n] = 2
	}
	for _, ep := range cfg.Endpoints {
		if state[ep.Name] == 0 {
			visit(ep.Name)
		}
	}
}

// windowNames is a window's endpoints: list, checked once the endpoints
// are read.
type windowNames struct {
	node  *yaml.Node
	field string
	names []string
}

// windowEndpoints checks that the maintenance windows name watched
// endpoints (or pairs agents probe, "host:port").
func (p *configParser) windowEndpoints(cfg *Config) {
	have := map[string]bool{}
	for _, ep := range cfg.Endpoints {
		have[ep.Name] = true
	}
	for _, c := range p.covers {
		for _, name := range c.names {
			if !have[name] && !strings.Contains(name, ":") {
				p.errf(c.node, c.field, "%q is not an endpoint of this file (%s)", name, knownNames(cfg))
			}
		}
	}
}

func knownNames(cfg *Config) string {
	var ns []string
	for _, ep := range cfg.Endpoints {
		ns = append(ns, ep.Name)
	}
	if len(ns) > 8 {
		ns = append(ns[:8], "...")
	}
	if len(ns) == 0 {
		return "it has none"
	}
	return "known: " + strings.Join(ns, ", ")
}
