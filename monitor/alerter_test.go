package monitor

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/probe"
)

// fakeClock drives an Alerter the way a running process does, one second
// at a time, without waiting.
type fakeClock struct {
	t   *testing.T
	a   *Alerter
	now time.Time
	got []Alert
}

func newFakeClock(t *testing.T, yaml string, start time.Time) *fakeClock {
	t.Helper()
	cfg, err := ParseConfig("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeClock{t: t, a: NewAlerter(cfg), now: start}
}

// change tells the Alerter that name went to state now.
func (c *fakeClock) change(name string, state State) {
	class := probe.Open
	if state == StateDown {
		class = probe.Refused
	}
	c.got = append(c.got, c.a.Change(c.now, Alert{Endpoint: name, Source: LocalSource, State: state,
		Time: c.now, Class: class})...)
}

// advance moves the clock by d, ticking each second.
func (c *fakeClock) advance(d time.Duration) {
	for end := c.now.Add(d); c.now.Before(end); {
		c.now = c.now.Add(time.Second)
		c.got = append(c.got, c.a.Tick(c.now)...)
	}
}

// take returns the alerts sent since the last take, as "kind endpoint
// [dependents]" lines.
func (c *fakeClock) take() []string {
	var out []string
	for _, a := range c.got {
		s := string(a.Kind) + " " + a.Endpoint
		if len(a.Dependents) > 0 {
			s += " [" + strings.Join(a.Dependents, " ") + "]"
		}
		out = append(out, s)
	}
	c.got = nil
	return out
}

func (c *fakeClock) want(what string, want ...string) {
	c.t.Helper()
	if got := c.take(); !slices.Equal(got, want) {
		c.t.Errorf("%s: sent %q, want %q", what, got, want)
	}
}

const depsYAML = `
alerts:
  group_wait: 10s
endpoints:
  - {name: db, target: "127.0.0.1:5432"}
  - {name: api, target: "127.0.0.1:8080", depends_on: [db]}
  - {name: web, target: "127.0.0.1:80", depends_on: [api]}
  - {name: cron, target: "127.0.0.1:81", depends_on: [db]}
  - {name: other, target: "127.0.0.1:82"}
`

func TestAlerterDependencies(t *testing.T) {
	c := newFakeClock(t, depsYAML, time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	// The host of db goes: its dependents' probes fail first, db's last.
	c.change("api", StateDown)
	c.advance(3 * time.Second)
	c.change("web", StateDown)
	c.change("cron", StateDown)
	c.advance(2 * time.Second)
	c.change("db", StateDown)
	c.change("other", StateDown)
	c.advance(time.Minute)
	c.want("the parent down", "firing db [api cron web]", "firing other")

	// db comes back but api stays down: its own problem now, said at once,
	// with web behind it; cron came back with db and was never announced.
	c.change("cron", StateUp)
	c.change("db", StateUp)
	c.want("the parent back", "resolved db", "firing api [web]")
	c.advance(time.Minute)
	c.want("a minute later")
	c.change("web", StateUp)
	c.change("api", StateUp)
	c.want("all back", "resolved api")

	// An endpoint that depends on one that is up alerts on its own.
	c.change("cron", StateDown)
	c.advance(9 * time.Second)
	c.want("within group_wait")
	c.advance(time.Second)
	c.want("after group_wait", "firing cron")
}

func TestAlerterRemindsAndResolves(t *testing.T) {
	c := newFakeClock(t, "alerts: {remind_every: 1h}\nendpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	c.change("db", StateDown)
	c.want("down", "firing db")
	c.advance(3*time.Hour + 10*time.Minute)
	c.want("3h10m later", "reminder db", "reminder db", "reminder db")
	c.change("db", StateUp)
	if len(c.got) != 1 || c.got[0].Since.IsZero() || !strings.Contains(c.got[0].Text, "after 3h10m0s down") {
		t.Errorf("resolved alert %+v; want it to say how long db was down", c.got)
	}
	c.want("up", "resolved db")
	c.advance(2 * time.Hour)
	c.want("up for 2h")
}

func TestAlerterFlapping(t *testing.T) {
	c := newFakeClock(t, "alerts: {flapping: {changes: 4, window: 10m}}\nendpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	for i := range 20 { // 20 changes, 30 s apart
		c.change("db", []State{StateDown, StateUp}[i%2])
		c.advance(30 * time.Second)
	}
	c.want("20 changes in 10 minutes", "firing db", "resolved db", "firing db", "resolved db", "flapping db")
	c.advance(9*time.Minute + 29*time.Second)
	c.want("quiet for less than the window")
	c.advance(time.Second)
	c.want("quiet for the window", "flapping-stopped db")
	// Settled up: the next change is announced again.
	c.change("db", StateDown)
	c.want("down after settling", "firing db")
}

// A maintenance window holds a flapping alert too: an endpoint restarted
// again and again during its maintenance pages nobody. Still flapping when
// the window closes, it is announced then; settled inside it, it is
// announced as what it settled to.
func TestAlerterFlappingInMaintenance(t *testing.T) {
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	c := newFakeClock(t, "alerts: {flapping: {changes: 2, window: 5m}}\n"+
		"endpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n  - {name: api, target: '127.0.0.1:8080'}\n", start)
	for _, name := range []string{"db", "api"} {
		if _, err := c.a.AddWindow(c.now, Window{Endpoints: []string{name}, Start: start, End: start.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 16 { // db: a change every 30 s until 10:08, then down
		c.change("db", []State{StateUp, StateDown}[i%2])
		if i < 5 {
			c.change("api", []State{StateDown, StateUp}[i%2]) // api: until 10:02, then down
		}
		c.advance(30 * time.Second)
	}
	c.want("flapping inside the window")
	if act := c.a.Active(c.now); len(act) != 0 {
		t.Errorf("Alertmanager would be told %+v fires inside the window", act)
	}
	c.advance(2 * time.Minute)
	c.want("the window closes: db still flapping, api settled down", "flapping db", "firing api")
	c.advance(5 * time.Minute)
	c.want("db settles, down", "flapping-stopped db")
	c.change("db", StateUp)
	c.want("db up", "resolved db")
}

func TestAlerterFlappingStopsDown(t *testing.T) {
	c := newFakeClock(t, "alerts: {flapping: {changes: 2, window: 1m}}\nendpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	for _, s := range []State{StateDown, StateUp, StateDown} {
		c.change("db", s)
		c.advance(time.Second)
	}
	c.want("three changes", "firing db", "resolved db", "flapping db")
	c.advance(time.Minute)
	c.want("settled down", "flapping-stopped db")
	if act := c.a.Active(c.now); len(act) != 1 || act[0].Kind != AlertFiring {
		t.Errorf("active after settling down = %+v, want db firing", act)
	}
	c.change("db", StateUp)
	c.want("then up", "resolved db")
}

// The maintenance window holds alerts while it is open; one still down
// when it closes is announced then.
func TestAlerterMaintenanceAcrossDST(t *testing.T) {
	// Sunday 2026-03-29, Berlin: clocks go from 02:00 CET to 03:00 CEST.
	// The window opens at 01:00 CET (00:00 UTC) and lasts 3 hours: to
	// 03:00 UTC, 05:00 CEST. Read as wall-clock time it would end at 04:00
	// CEST (02:00 UTC); read with the winter offset, it would open at
	// 00:00 UTC on the next Sunday too (it opens at 23:00 UTC on Saturday).
	cfg := `
alerts:
  maintenance:
    - {name: upgrade, endpoints: [db], days: [sun], at: "01:00", for: 3h, zone: Europe/Berlin}
endpoints:
  - {name: db, target: "127.0.0.1:5432"}
  - {name: api, target: "127.0.0.1:8080"}
`
	c := newFakeClock(t, cfg, time.Date(2026, 3, 28, 23, 59, 0, 0, time.UTC))
	c.change("db", StateDown)
	c.want("before the window", "firing db")
	c.change("db", StateUp)
	c.want("up", "resolved db")
	c.advance(time.Minute) // 00:00 UTC: open
	c.advance(2*time.Hour + 30*time.Minute)
	c.change("db", StateDown) // 02:30 UTC, 04:30 CEST: still inside
	c.change("api", StateDown)
	c.want("inside the window", "firing api")
	c.advance(29*time.Minute + 59*time.Second)
	c.want("until 02:59:59 UTC")
	c.advance(time.Second)
	c.want("03:00 UTC, 05:00 CEST: closed", "firing db")
	if h := c.a.Held(LocalSource, "db", c.now); h != "" {
		t.Errorf("held after the window: %q", h)
	}

	// A week later (CEST all along) it opens at 23:00 UTC on Saturday.
	c.change("db", StateUp)
	c.take()
	c.now = time.Date(2026, 4, 4, 22, 59, 0, 0, time.UTC)
	c.change("db", StateDown)
	c.want("a week later, before", "firing db")
	c.change("db", StateUp)
	c.take()
	c.now = time.Date(2026, 4, 4, 23, 0, 0, 0, time.UTC)
	c.change("db", StateDown)
	c.want("a week later, inside")
	if h := c.a.Held(LocalSource, "db", c.now); h != "maintenance upgrade" {
		t.Errorf("held = %q", h)
	}
}

func TestWindowActiveAcrossDST(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	ny, _ := time.LoadLocation("America/New_York")
	sat02 := Window{Days: []time.Weekday{time.Saturday}, At: 2 * 60, For: 2 * time.Hour, Zone: berlin}
	daily0130 := Window{At: 90, For: time.Hour, Zone: ny}
	skipped := Window{Days: []time.Weekday{time.Sunday}, At: 2*60 + 30, For: time.Hour, Zone: berlin}
	utc := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	for _, tc := range []struct {
		w    Window
		at   string
		want bool
	}{
		{sat02, "2026-03-28T00:59:59Z", false}, // 01:59:59 CET
		{sat02, "2026-03-28T01:00:00Z", true},  // 02:00 CET
		{sat02, "2026-03-28T02:59:59Z", true},
		{sat02, "2026-03-28T03:00:00Z", false},
		{sat02, "2026-04-04T00:00:00Z", true}, // 02:00 CEST: an hour earlier in UTC
		{sat02, "2026-04-04T02:30:00Z", false},
		{sat02, "2026-03-29T01:30:00Z", false}, // Sunday
		// New York: clocks go from 02:00 EST to 03:00 EDT on 2026-03-08.
		{daily0130, "2026-03-07T06:30:00Z", true}, // 01:30 EST
		{daily0130, "2026-03-08T06:30:00Z", true}, // 01:30 EST, the night of the change
		{daily0130, "2026-03-08T07:29:59Z", true}, // 03:29:59 EDT: one hour after 01:30 EST
		{daily0130, "2026-03-08T07:30:00Z", false},
		{daily0130, "2026-03-09T05:30:00Z", true}, // 01:30 EDT
		{daily0130, "2026-03-09T06:30:00Z", false},
		// 02:30 does not exist in Berlin on 2026-03-29: it opens at 03:30 CEST.
		{skipped, "2026-03-29T01:29:59Z", false},
		{skipped, "2026-03-29T01:30:00Z", true},
		{skipped, "2026-03-29T02:29:59Z", true},
		{skipped, "2026-03-29T02:30:00Z", false},
		// A window that crosses midnight holds after it.
		{Window{Days: []time.Weekday{time.Friday}, At: 23 * 60, For: 3 * time.Hour, Zone: time.UTC}, "2026-04-04T01:00:00Z", true},
		{Window{Start: utc("2026-03-29T00:00:00Z"), End: utc("2026-03-29T01:00:00Z")}, "2026-03-29T00:59:59Z", true},
		{Window{Start: utc("2026-03-29T00:00:00Z"), End: utc("2026-03-29T01:00:00Z")}, "2026-03-29T01:00:00Z", false},
	} {
		if got := tc.w.Active(utc(tc.at)); got != tc.want {
			t.Errorf("%s: Active(%s) = %v, want %v", tc.w, tc.at, got, tc.want)
		}
	}
}

func TestAlerterAPIWindow(t *testing.T) {
	c := newFakeClock(t, "endpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n  - {name: api, target: '127.0.0.1:1'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	w, err := c.a.AddWindow(c.now, Window{Endpoints: []string{"db"}, Start: c.now, End: c.now.Add(time.Hour), Reason: "upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.a.AddWindow(c.now, Window{Start: c.now, End: c.now.Add(-time.Hour)}); err == nil {
		t.Error("a window that ends before it starts was accepted")
	}
	c.change("db", StateDown)
	c.change("api", StateDown)
	c.advance(10 * time.Minute)
	c.want("in the window", "firing api")
	if err := c.a.RemoveWindow(w.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.a.RemoveWindow(w.ID); err == nil {
		t.Error("removed twice")
	}
	c.advance(time.Second)
	c.want("window removed", "firing db")
}

func TestAlerterSeedResolvesAfterRestart(t *testing.T) {
	c := newFakeClock(t, "alerts: {remind_every: 1h}\nendpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	c.a.Seed(c.now, []Status{{Endpoint: "db", Source: LocalSource, State: StateDown, Since: c.now.Add(-time.Hour)}})
	c.advance(59 * time.Minute)
	c.want("restored down")
	c.advance(time.Minute)
	c.want("an hour after the restart", "reminder db")
	c.change("db", StateUp)
	c.want("back", "resolved db")

	// A replica takes over while a change to down is still to be sent: it
	// is seeded with db down, then handed that change, and announces it.
	c.a.Seed(c.now, []Status{{Endpoint: "api", Source: LocalSource, State: StateDown, Since: c.now}})
	c.change("api", StateDown)
	c.want("the unsent change after a takeover", "firing api")
}

// An endpoint held when the Alerter is seeded (a restart, a replica's
// takeover) was never announced: it gets no resolved alert, Alertmanager
// is not told it fires, and it alerts when its hold ends. And what the
// Alerter knew before a takeover is stale: an endpoint the other holder
// saw come back is not reminded of.
func TestAlerterSeedKeepsHolds(t *testing.T) {
	c := newFakeClock(t, "alerts: {remind_every: 10m}\nendpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n"+
		"  - {name: api, target: '127.0.0.1:8080', depends_on: [db]}\n  - {name: cache, target: '127.0.0.1:6379'}\n"+
		"  - {name: web, target: '127.0.0.1:80'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	c.change("web", StateDown)
	c.want("web down before the takeover", "firing web")
	if _, err := c.a.AddWindow(c.now, Window{Endpoints: []string{"cache"}, Start: c.now, End: c.now.Add(15 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	c.a.Seed(c.now, []Status{
		{Endpoint: "db", Source: LocalSource, State: StateDown, Since: c.now.Add(-time.Minute)},
		{Endpoint: "api", Source: LocalSource, State: StateDown, Since: c.now.Add(-time.Minute)},
		{Endpoint: "cache", Source: LocalSource, State: StateDown, Since: c.now.Add(-time.Minute)},
		{Endpoint: "web", Source: LocalSource, State: StateUp, Since: c.now.Add(-time.Minute)},
	})
	var active []string
	for _, a := range c.a.Active(c.now) {
		active = append(active, a.Endpoint)
	}
	if !slices.Equal(active, []string{"db"}) {
		t.Errorf("firing after the seed: %q, want only db (api and cache are held, web is up)", active)
	}
	c.advance(10 * time.Minute)
	c.want("10 minutes on", "reminder db [api]")
	c.change("api", StateUp)
	c.change("web", StateUp)
	c.want("api and web up: never announced by this holder")
	c.advance(5 * time.Minute)
	c.want("cache's window closes", "firing cache")
	c.change("cache", StateUp)
	c.change("db", StateUp)
	c.want("both up", "resolved cache", "resolved db")
}

// A replica's alerts carry their outbox id (the webhook's Idempotency-Key):
// a reminder or a flapping-stopped notice, made by the clock, must not
// carry the id of the alert it follows, or a receiver drops it as a repeat.
func TestAlerterRepeatsCarryNoOutboxID(t *testing.T) {
	c := newFakeClock(t, "alerts: {remind_every: 1m, flapping: {changes: 2, window: 1m}}\n"+
		"endpoints:\n  - {name: db, target: '127.0.0.1:5432'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	id := int64(0)
	change := func(s State) {
		id++
		c.got = append(c.got, c.a.Change(c.now, Alert{ID: id, Endpoint: "db", Source: LocalSource, State: s, Time: c.now})...)
	}
	change(StateDown)
	c.advance(time.Minute)
	change(StateUp)
	c.advance(time.Second)
	change(StateDown)
	c.advance(time.Second)
	change(StateUp)
	c.advance(2 * time.Minute)
	var got []string
	for _, a := range c.got {
		got = append(got, fmt.Sprintf("%s %d", a.Kind, a.ID))
	}
	want := []string{"firing 1", "reminder 0", "resolved 2", "firing 3", "flapping 4", "flapping-stopped 0"}
	if !slices.Equal(got, want) {
		t.Errorf("alerts (kind id): %q, want %q", got, want)
	}
}

func TestAlertSummary(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		a    Alert
		want string
	}{
		{Alert{Kind: AlertFiring, Endpoint: "db", Source: "web-1", Class: probe.Refused, Cause: "not-listening",
			Findings: []Finding{{Issue: "Server not running", Fix: "start it"}}, Dependents: []string{"api", "web"}},
			"DOWN: db (seen from web-1) (refused, not-listening): Server not running. Fix: start it; and 2 dependent endpoints (api, web)"},
		{Alert{Kind: AlertResolved, Endpoint: "db", Source: LocalSource, Since: t0, Time: t0.Add(5 * time.Minute)},
			"RESOLVED: db is up again after 5m0s down"},
		{Alert{Kind: AlertFlapping, Endpoint: "db", Changes: 7},
			"FLAPPING: db changed state 7 times recently; its changes are not announced until it settles"},
	} {
		if got := tc.a.Summary(); got != tc.want {
			t.Errorf("Summary() =\n %s\nwant\n %s", got, tc.want)
		}
	}
}

// A host that is gone takes its agent with it: the hub's one alert that
// the agent stopped calling names the pairs toward that host, whose own
// alerts are held.
func TestAlerterHostReachability(t *testing.T) {
	c := newFakeClock(t, "alerts: {group_wait: 5s}\nendpoints:\n  - {name: x, target: '127.0.0.1:1'}\n",
		time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	pair := func(source, name string, s State) {
		c.got = append(c.got, c.a.Change(c.now, Alert{Endpoint: name, Source: source, State: s, Time: c.now})...)
	}
	pair("db-1", AgentEndpoint, StateUp)
	pair("web-1", "db-1:5432", StateUp)
	pair("web-2", "db-1:22", StateUp)
	pair("web-1", "cache-1:6379", StateUp)
	c.take()
	pair("web-1", "db-1:5432", StateDown)
	pair("web-2", "db-1:22", StateDown)
	c.advance(2 * time.Second)
	pair("db-1", AgentEndpoint, StateDown)
	pair("web-1", "cache-1:6379", StateDown)
	c.advance(time.Minute)
	c.want("db-1 gone", "firing agent [db-1:5432 (from web-1) db-1:22 (from web-2)]", "firing cache-1:6379")
	if h := c.a.Held("web-1", "db-1:5432", c.now); h != "the agent of db-1 stopped calling" {
		t.Errorf("held = %q", h)
	}
}
