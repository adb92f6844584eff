package hub

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
)

// ruleConfig parses an agents: section the way reach watch does.
func ruleConfig(t *testing.T, text string) Config {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(text), &n); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(n.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	c.Token = testToken
	return c
}

const rulesYAML = `
interval: 1s
hosts:
  - {name: legacy, addr: 198.18.0.9, labels: {role: db}}
matrix:
  rules:
    - {from: {role: web}, to: {role: db}, ports: [5432]}
    - {from: all, to: all, ports: [7070]}
registration: {stale_after: 3s, alert_after: 2s, max_agents: 3}
`

func reg(name, addr string, run int64, labels map[string]string) agent.Registration {
	return agent.Registration{Name: name, Addrs: []netip.Addr{netip.MustParseAddr(addr)},
		Labels: labels, Run: run}
}

// targetIDs lists the target ids of name's probe list.
func targetIDs(h *Hub, name string) []string {
	var ids []string
	for _, t := range h.Lists()[name].Targets {
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	return ids
}

// Agents the config does not name register over the protocol; the rules
// make every probe list from labels, the config's hosts' included, and an
// agent that leaves takes its pairs with it.
func TestRegisterBuildsListsFromRules(t *testing.T) {
	h, srv := newTestHub(t, ruleConfig(t, rulesYAML))
	for _, r := range []agent.Registration{
		reg("web-1", "198.18.0.1", 1, map[string]string{"role": "web"}),
		reg("db-1", "198.18.0.2", 1, map[string]string{"role": "db", "zone": "a"}),
	} {
		var reply agent.RegisterReply
		if _, err := call(nil, srv.URL, http.MethodPost, agent.PathRegister, nil, r, &reply); err != nil {
			t.Fatalf("register %s: %v", r.Name, err)
		}
	}
	want := map[string][]string{
		"web-1":  {"db-1:5432", "db-1:7070", "legacy:5432", "legacy:7070"},
		"db-1":   {"legacy:7070", "web-1:7070"},
		"legacy": {"db-1:7070", "web-1:7070"},
	}
	for name, ids := range want {
		if got := targetIDs(h, name); !slices.Equal(got, ids) {
			t.Errorf("%s probes %v, want %v", name, got, ids)
		}
	}
	var pl agent.ProbeList
	if _, err := call(nil, srv.URL, http.MethodGet, agent.PathTargets, url.Values{"agent": {"web-1"}}, nil, &pl); err != nil || len(pl.Targets) != 4 {
		t.Fatalf("web-1's probe list over the protocol: %v, %v", pl, err)
	}
	infos := h.Agents()
	if len(infos) != 3 || infos[0].Name != "legacy" || infos[0].Registered ||
		!infos[2].Registered || infos[2].Labels["role"] != "web" {
		t.Errorf("Agents() = %+v", infos)
	}
	if m := h.Matrix(); !slices.Equal(m.Sources, []string{"legacy", "db-1", "web-1"}) {
		t.Errorf("matrix sources %v", m.Sources)
	}

	q := url.Values{"agent": {"web-1"}, "run": {"1"}}
	if _, err := call(nil, srv.URL, http.MethodDelete, agent.PathRegister, q, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := targetIDs(h, "db-1"); !slices.Equal(got, []string{"legacy:7070"}) {
		t.Errorf("after web-1 left, db-1 probes %v", got)
	}
	if _, ok := h.Lists()["web-1"]; ok {
		t.Error("web-1 still has a probe list after it deregistered")
	}
}

// Everything a registration says is checked; a name or address that
// passes for a configured host, an earlier run, a full registry and a
// deregistration of someone else's run are refused with their status.
func TestRegisterRefusals(t *testing.T) {
	h, srv := newTestHub(t, ruleConfig(t, rulesYAML))
	for _, tc := range []struct {
		name string
		r    agent.Registration
		want int
	}{
		{"bad label", reg("a", "198.18.0.1", 1, map[string]string{"a b": "c"}), http.StatusBadRequest},
		{"loopback", reg("a", "127.0.0.1", 1, nil), http.StatusBadRequest},
		{"reserved name", reg(monitor.LocalSource, "198.18.0.1", 1, nil), http.StatusBadRequest},
		{"configured name, other addr", reg("legacy", "198.18.0.1", 1, nil), http.StatusConflict},
		{"configured addr, other name", reg("x", "198.18.0.9", 1, nil), http.StatusConflict},
		{"configured name and addr", reg("legacy", "198.18.0.9", 1, nil), http.StatusOK},
		{"new", reg("a", "198.18.0.1", 5, nil), http.StatusOK},
		{"earlier run", reg("a", "198.18.0.1", 4, nil), http.StatusConflict},
		{"same run again", reg("a", "198.18.0.1", 5, map[string]string{"role": "web"}), http.StatusOK},
		{"second", reg("b", "198.18.0.2", 1, nil), http.StatusOK},
		{"third", reg("c", "198.18.0.3", 1, nil), http.StatusOK},
		{"full", reg("d", "198.18.0.4", 1, nil), http.StatusServiceUnavailable},
	} {
		status, err := call(nil, srv.URL, http.MethodPost, agent.PathRegister, nil, tc.r, nil)
		if status != tc.want {
			t.Errorf("%s: status %d (%v), want %d", tc.name, status, err, tc.want)
		}
	}
	if targetIDs(h, "legacy") == nil || h.Agents()[0].Registered {
		t.Error("the configured host's registration replaced its config entry")
	}
	for _, tc := range []struct {
		q    url.Values
		want int
	}{
		{url.Values{"agent": {"a"}, "run": {"4"}}, http.StatusConflict},
		{url.Values{"agent": {"a"}, "run": {"x"}}, http.StatusBadRequest},
		{url.Values{"agent": {"nobody"}, "run": {"1"}}, http.StatusNotFound},
		{url.Values{"agent": {"legacy"}, "run": {"1"}}, http.StatusOK},
		{url.Values{"agent": {"a"}, "run": {"5"}}, http.StatusOK},
	} {
		if status, err := call(nil, srv.URL, http.MethodDelete, agent.PathRegister, tc.q, nil, nil); status != tc.want {
			t.Errorf("deregister %v: status %d (%v), want %d", tc.q, status, err, tc.want)
		}
	}
	if _, ok := h.Lists()["legacy"]; !ok {
		t.Error("deregistering a configured host removed it")
	}
}

type alerts struct {
	mu  sync.Mutex
	got []monitor.Alert
}

func (a *alerts) Notify(al monitor.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, al)
}

func (a *alerts) list() []monitor.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}

// A registered agent that goes silent is stale after stale_after, alerts
// once after alert_after more, and is told of as back when it calls again.
func TestSweepStaleThenAlert(t *testing.T) {
	h, err := New(ruleConfig(t, rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	al := &alerts{}
	h.Notifier = al
	if _, status, err := h.Register(t.Context(), reg("web-1", "198.18.0.1", 1, map[string]string{"role": "web"}), nil); err != nil {
		t.Fatal(status, err)
	}
	h.mu.Lock()
	start := h.agents["web-1"].last
	h.mu.Unlock()
	state := func() string { return h.Agents()[1].State }

	h.Sweep(start.Add(2 * time.Second))
	if state() != "" || len(al.list()) != 0 {
		t.Fatalf("within stale_after: state %q, alerts %v", state(), al.list())
	}
	h.Sweep(start.Add(4 * time.Second))
	if state() != agent.StateStale || len(al.list()) != 0 {
		t.Fatalf("past stale_after: state %q, alerts %v", state(), al.list())
	}
	h.Sweep(start.Add(6 * time.Second))
	h.Sweep(start.Add(7 * time.Second))
	got := al.list()
	if state() != agent.StateAlerting || len(got) != 1 || got[0].Source != "web-1" ||
		got[0].State != monitor.StateDown || got[0].Cause != "agent-stale" || got[0].Labels["role"] != "web" {
		t.Fatalf("past alert_after: state %q, alerts %+v", state(), got)
	}
	h.mu.Lock()
	h.seenAt("web-1", start.Add(8*time.Second))
	h.mu.Unlock()
	h.Sweep(start.Add(9 * time.Second))
	if got := al.list(); state() != "" || len(got) != 2 || got[1].State != monitor.StateUp {
		t.Fatalf("after it called again: state %q, alerts %+v", state(), got)
	}
}

// Registrations live in the store (SQLite and PostgreSQL): a second hub
// on it (a restart, or another replica) knows the agent, also one
// registered after it started, and forgets it when it leaves; a hub on the
// store opened again knows what is left.
func TestRegistryInStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		store, err := monitor.OpenStore(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		newHub := func(store *monitor.Store) *Hub {
			h, err := New(ruleConfig(t, rulesYAML))
			if err != nil {
				t.Fatal(err)
			}
			h.Registry = store
			if err := h.Restore(t.Context()); err != nil {
				t.Fatal(err)
			}
			return h
		}
		a := newHub(store)
		web := reg("web-1", "198.18.0.1", 1, map[string]string{"role": "web"})
		if _, _, err := a.Register(t.Context(), web, nil); err != nil {
			t.Fatal(err)
		}
		b := newHub(store)
		if got := targetIDs(b, "web-1"); !slices.Equal(got, []string{"legacy:5432", "legacy:7070"}) {
			t.Fatalf("a second hub on the store gives web-1 %v", got)
		}
		if _, _, err := a.Register(t.Context(), reg("db-1", "198.18.0.2", 1, map[string]string{"role": "db"}), nil); err != nil {
			t.Fatal(err)
		}
		// Registering the same run again updates it in place.
		if _, _, err := a.Register(t.Context(), web, nil); err != nil {
			t.Fatalf("web-1 registering again: %v", err)
		}
		b.mu.Lock()
		b.reloaded = time.Time{}
		b.mu.Unlock()
		b.knowAgent(t.Context(), "db-1") // an unknown agent called b
		if got := targetIDs(b, "db-1"); !slices.Equal(got, []string{"legacy:7070", "web-1:7070"}) {
			t.Fatalf("b after db-1 registered with a: %v", got)
		}
		if _, err := a.Deregister(t.Context(), "web-1", 1); err != nil {
			t.Fatal(err)
		}
		if recs, err := store.Agents(t.Context()); err != nil || len(recs) != 1 || recs[0].Name != "db-1" || recs[0].Run != 1 {
			t.Fatalf("store after web-1 left: %+v, %v", recs, err)
		}
		if ok, err := store.PutAgent(t.Context(), monitor.AgentRecord{Name: "db-1", Run: 0, Data: []byte("{}")}); ok || err != nil {
			t.Errorf("an earlier run replaced a later one in the store: %v, %v", ok, err)
		}
		if ok, err := store.DeleteAgent(t.Context(), "db-1", 0); ok || err != nil {
			t.Errorf("an earlier run's deregistration removed a later one: %v, %v", ok, err)
		}

		// A restart: the store opened again, a new hub restored from it.
		store.Close()
		store, err = monitor.OpenStore(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		c := newHub(store)
		if got := targetIDs(c, "db-1"); !slices.Equal(got, []string{"legacy:7070"}) {
			t.Fatalf("after a restart db-1 has %v", got)
		}
		if _, ok := c.Lists()["web-1"]; ok {
			t.Error("after a restart the hub lists web-1, which left")
		}
		if ok, err := store.DeleteAgent(t.Context(), "db-1", 1); !ok || err != nil {
			t.Errorf("db-1 leaving after the restart: %v, %v", ok, err)
		}
	})
}

// A real agent started with addresses and labels registers, probes what
// the rules give it, beats while it has nothing to report, and leaves when
// stopped. Its dials are recorded, never sent.
func TestAgentRegistersAndLeaves(t *testing.T) {
	h, srv := newTestHub(t, ruleConfig(t, rulesYAML))
	var mu sync.Mutex
	var dialled []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, addr)
		mu.Unlock()
		return nil, errors.New("test: not dialled")
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(agent.Config{Name: "web-1", Hub: srv.URL, Token: testToken,
		Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.1")}, Labels: map[string]string{"role": "web"},
		Dial: dial, NoNetWatch: true, ReportEvery: 50 * time.Millisecond, MinInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testnet.Eventually(t, 10*time.Second, "web-1 probes legacy:5432", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(dialled, "198.18.0.9:5432")
	})
	if got := targetIDs(h, "web-1"); !slices.Equal(got, []string{"legacy:5432", "legacy:7070"}) {
		t.Fatalf("web-1's list: %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if _, ok := h.Lists()["web-1"]; ok {
		t.Error("the agent stopped, yet the hub still lists it")
	}
}

// Rules and labels in the config are checked, naming what is wrong.
func TestRuleConfigRefused(t *testing.T) {
	for _, text := range []string{
		"matrix: {rules: [{from: all, to: all}]}",                      // no ports
		"matrix: {rules: [{from: all, to: all, ports: [0]}]}",          // port 0
		"matrix: {rules: [{from: {}, to: all, ports: [1]}]}",           // empty selector
		"matrix: {rules: [{to: all, ports: [1]}]}",                     // no from
		"matrix: {rules: [{from: {a b: c}, to: all, ports: [1]}]}",     // bad label
		"matrix: {rules: [{from: [a], to: all, ports: [1]}]}",          // not a selector
		"matrix: {rules: [{from: all, to: all, ports: [1], port: 2}]}", // unknown field
		"matrix: {rule: []}",                                          // unknown field
		"registration: {stale: 1s}",                                   // unknown field
		"registration: {stale_after: -1s}",                            // negative
		"hosts: [{name: a, addr: 198.18.0.1, labels: {role: 'a b'}}]", // bad label value
		"hosts: [{name: a, addr: 198.18.0.1, labels: {role: [x]}}]",   // not a string
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte("token_file: x\n"+text), &n); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if _, err := ParseConfig(n.Content[0]); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: ParseConfig = %v, want ErrConfig", text, err)
		}
	}
}
