package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/httpsafe"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// Sink stores ingested results (e.g. the monitor's history store). Results
// arrive with Source set to the authenticated agent.
type Sink interface {
	Ingest(ctx context.Context, results []agent.Result) error
}

// SequencedSink, when a Sink implements it, gets each sequenced batch's
// results with the agent's run and each result's number, so a store shared
// by several hubs (replicas) keeps a result once, whichever hub it reached.
// Until IngestSeq returns nil the agent is not told the batch is stored.
type SequencedSink interface {
	Sink
	IngestSeq(ctx context.Context, run int64, seqs []uint64, results []agent.Result) error
}

// ChangeSink, when a Sink implements it, is told of the network changes an
// agent saw (checked like its results), before the results that followed
// them, and how long after a change its pairs' state changes count as its.
type ChangeSink interface {
	NoteChanges(agent string, changes []agent.NetChange, window time.Duration)
}

// historyLen is how many results per pair the hub keeps in memory for the
// pair page; long-term history is the Sink's job.
const historyLen = 120

// Hub hands out probe lists, ingests results and keeps the latest state of
// every source × target pair. Build it with NewHub.
type Hub struct {
	// Sink, when set, receives every accepted batch.
	Sink Sink
	// Logger receives ingest and auth problems; nil discards.
	Logger *slog.Logger
	// Metrics, when set, count the results the hub refuses, by reason.
	Metrics *Metrics
	// Limits bound what each agent may send; the zero value is the default.
	Limits Limits
	// HistoryLink, when set, gives the URL of a pair's stored history and
	// findings (e.g. the dashboard's API), linked from the pair page.
	HistoryLink func(source, target string) string
	// Causes, when set, gives the doctor's cause id for a failing pair
	// (the monitor's state of it), shown in the matrix's cells.
	Causes func(source, target string) string
	// Shared, when set, gives a pair's latest result as the shared store
	// has it (replicas: the agent may report to another replica); the
	// matrix shows it where it is newer than what this hub took itself.
	Shared func(source, target string) (class probe.Class, last time.Time, rtt time.Duration, ok bool)
	// AgentClient asks target hosts' agents for evidence on the pair page;
	// nil uses one with a 3 s timeout. Set its TLS config for https agents.
	AgentClient *http.Client
	// Registry keeps the agents that registered, so that a restart (or
	// another replica on the same store) knows them; nil keeps them in
	// memory only. See Restore.
	Registry Registry
	// Notifier is told when a registered agent has been stale for the
	// grace (registration.alert_after) and when it is back or leaves.
	Notifier monitor.Notifier
	// ListsChanged, when set, is called (without the hub's locks) after
	// the probe lists changed because agents registered or left, so that
	// pairs no list holds any more can be forgotten elsewhere.
	ListsChanged func()

	// gate is held for reading by each ingest, from its checks until the
	// Sink has the batch, and for writing by SetConfig: a batch checked
	// against the old configuration reaches the Sink before the new one
	// applies, so what follows a reload (the monitor's ForgetSources)
	// sees it, and no batch re-creates a pair the reload removed.
	gate  sync.RWMutex
	mu    sync.RWMutex
	cfg   Config
	lists map[string]agent.ProbeList
	// members are the fleet's hosts: the config's, then the registered
	// agents' (reg) that no host of the config names.
	members []HostConfig
	reg     map[string]agent.Registration
	// reloaded is when the registry was last read again for an agent
	// the hub did not know (another replica may have registered it).
	reloaded time.Time
	cells    map[pair]*cell
	agents   map[string]*agentSeen
	// unknownWarned is when the hub last warned of results from agents
	// its config lacks.
	unknownWarned time.Time
}

type pair struct{ source, target string }

type cell struct {
	last  agent.Result // the newest result, history's last
	since time.Time    // when last.Class began
	// history is a ring of the last historyLen results, oldest at head
	// once full. With 100,000 pairs it is most of a hub's memory, hence
	// records of what varies from one result to the next (24 bytes, not an
	// agent.Result's 136): source and target are the pair's; error texts
	// (errs) and addresses (addrs) are kept beside the records, in the
	// same slots, only once a pair has them.
	history []record
	head    int
	// errs[i] is history[i]'s error text; nil until a result has one.
	errs []string
	// addrs[i] is history[i]'s address; nil while every record's is
	// last.Addr (a reload that moves a target sets it).
	addrs []netip.AddrPort
}

// record is one result of a pair's history.
type record struct {
	unixNano int64
	rtt      agent.Duration
	errno    uint16 // at most agent.MaxErrno
	class    uint8  // index in probe.Classes
}

// add puts a checked result (check makes its class one of probe.Classes
// and its errno at most agent.MaxErrno) in the history, over the oldest
// once it holds historyLen, before c.last becomes res.
func (c *cell) add(res agent.Result) {
	r := record{unixNano: res.Time.UnixNano(), rtt: res.RTT, errno: uint16(res.Errno),
		class: uint8(max(0, slices.Index(probe.Classes, res.Class)))}
	n := len(c.history)
	if res.Error != "" && c.errs == nil {
		c.errs = make([]string, n, cap(c.history))
	}
	if n > 0 && res.Addr != c.last.Addr && c.addrs == nil {
		c.addrs = make([]netip.AddrPort, n, cap(c.history))
		for i := range c.addrs {
			c.addrs[i] = c.last.Addr
		}
	}
	if n < historyLen {
		c.history = appendCapped(c.history, r)
		if c.errs != nil {
			c.errs = appendCapped(c.errs, res.Error)
		}
		if c.addrs != nil {
			c.addrs = appendCapped(c.addrs, res.Addr)
		}
		return
	}
	c.history[c.head] = r
	if c.errs != nil {
		c.errs[c.head] = res.Error
	}
	if c.addrs != nil {
		c.addrs[c.head] = res.Addr
	}
	c.head = (c.head + 1) % historyLen
}

// appendCapped appends v to s, growing s to historyLen at most, not to
// the next power of two.
func appendCapped[T any](s []T, v T) []T {
	if len(s) == cap(s) {
		grown := make([]T, len(s), min(historyLen, max(1, 2*len(s))))
		copy(grown, s)
		s = grown
	}
	return append(s, v)
}

// results returns the history as results of pair p, oldest first.
func (c *cell) results(p pair) []agent.Result {
	out := make([]agent.Result, 0, len(c.history))
	for i := range c.history {
		slot := (c.head + i) % len(c.history)
		r := c.history[slot]
		res := agent.Result{Source: p.source, Target: p.target, Addr: c.last.Addr,
			Class: probe.Classes[r.class], Errno: int(r.errno), RTT: r.rtt,
			Time: time.Unix(0, r.unixNano).UTC()}
		if c.errs != nil {
			res.Error = c.errs[slot]
		}
		if c.addrs != nil {
			res.Addr = c.addrs[slot]
		}
		out = append(out, res)
	}
	return out
}

type agentSeen struct {
	last    time.Time
	addr    string
	dropped uint64
	url     string // the agent's advertised base URL, checked against its address
	// run and next are the agent's latest Batch.Run and the Seq expected
	// next in it; warnedLegacy is set once it sent an unsequenced batch.
	run          int64
	next         uint64
	warnedLegacy bool
	// lastChange is the time of the newest network change it told us of:
	// a resent batch does not record its changes twice.
	lastChange time.Time
	warned     time.Time // when the hub last warned of its refused results
	// results and bytes are its ingest budgets (see Limits).
	results, bytes *rate.Limiter
	// state is a registered agent's standing: "" while it calls in time,
	// agent.StateStale past registration.stale_after, agent.StateAlerting
	// once stale for alert_after (see Sweep).
	state string
}

// New checks cfg and returns a hub. cfg.Token (or TokenFile) is required.
func New(cfg Config) (*Hub, error) {
	h := &Hub{cells: map[pair]*cell{}, agents: map[string]*agentSeen{},
		reg: map[string]agent.Registration{}}
	return h, h.SetConfig(cfg)
}

// SetConfig replaces the configuration (e.g. on SIGHUP), keeping the state
// of pairs that remain. It waits for the batches being ingested: when it
// returns, every batch the Sink gets is checked against cfg.
func (h *Hub) SetConfig(cfg Config) error {
	if cfg.Token == "" && cfg.TokenFile != "" {
		tok, err := agent.ReadToken(cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("agents.token_file: %w", err)
		}
		cfg.Token = tok
	}
	if cfg.Token == "" {
		return agent.ErrNoToken
	}
	if _, err := cfg.ProbeLists(); err != nil {
		return err
	}
	h.gate.Lock()
	defer h.gate.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cfg = cfg
	return h.rebuild()
}

// rebuild makes the probe lists and members from the config and the
// registered agents, and drops the pairs no list holds. h.gate and h.mu
// must be held for writing.
func (h *Hub) rebuild() error {
	var extra []HostConfig
	for _, name := range slices.Sorted(maps.Keys(h.reg)) {
		r := h.reg[name]
		extra = append(extra, HostConfig{Name: r.Name, Addr: r.Addrs[0].Unmap(), Labels: r.Labels,
			registered: true, addrs: r.Addrs})
	}
	lists, members, err := h.cfg.probeLists(extra)
	if err != nil {
		return err
	}
	h.lists, h.members = lists, members
	for p := range h.cells {
		if !h.allowed(p.source, p.target) {
			delete(h.cells, p)
		}
	}
	for name := range h.agents {
		if _, ok := h.lists[name]; !ok {
			delete(h.agents, name) // left, or removed from the config
		}
	}
	return nil
}

func (h *Hub) allowed(source, target string) bool {
	_, ok := h.target(source, target)
	return ok
}

// target is the entry with that ID in source's probe list; h.mu must be held.
func (h *Hub) target(source, id string) (agent.Target, bool) {
	ts := h.lists[source].Targets
	i := slices.IndexFunc(ts, func(t agent.Target) bool { return t.ID == id })
	if i < 0 {
		return agent.Target{}, false
	}
	return ts[i], true
}

func (h *Hub) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return h.Logger
}

// Handler serves the agent protocol: probe lists and result batches, behind
// the token (and, with mTLS, a client certificate naming the agent).
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agent.PathTargets, h.serveTargets)
	mux.HandleFunc("POST "+agent.PathResults, h.serveResults)
	mux.HandleFunc("GET "+agent.PathAgents, h.serveAgents)
	mux.HandleFunc("POST "+agent.PathRegister, h.serveRegister)
	mux.HandleFunc("DELETE "+agent.PathRegister, h.serveDeregister)
	return agent.RequireToken(func() string {
		h.mu.RLock()
		defer h.mu.RUnlock()
		return h.cfg.Token
	}, mux)
}

func (h *Hub) serveTargets(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("agent")
	if !agent.CertAllows(r, name) {
		http.Error(w, "client certificate does not name agent "+name, http.StatusForbidden)
		return
	}
	h.knowAgent(r.Context(), name)
	h.mu.Lock()
	pl, ok := h.lists[name]
	var advErr error
	if ok {
		seen := h.seen(name, r)
		if adv := r.URL.Query().Get("advertise"); adv != "" {
			if advErr = h.checkAdvertise(name, adv); advErr == nil {
				seen.url = strings.TrimRight(adv, "/")
			}
		}
	}
	h.mu.Unlock()
	if advErr != nil {
		h.logger().Warn("agent advertised a URL the hub will not use", "agent", name, "err", advErr)
	}
	if !ok {
		h.logger().Warn("unknown agent asked for its probe list", "agent", name, "remote", r.RemoteAddr)
		http.Error(w, "unknown agent "+name+": add it to agents.hosts in the hub config, "+
			"or start it with --addr so that it registers", http.StatusNotFound)
		return
	}
	writeJSON(w, pl)
}

// checkAdvertise accepts an agent's URL only on the address the config
// gives that host, so a token holder cannot point the hub (and its token)
// at another machine. h.mu must be held.
func (h *Hub) checkAdvertise(name, adv string) error {
	u, err := url.Parse(adv)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") {
		return fmt.Errorf("%q: want http(s)://address:port", adv)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	for _, hc := range h.members {
		if hc.Name != name {
			continue
		}
		if hc.registered && err == nil && slices.Contains(hc.addrs, ip.Unmap()) {
			return nil
		}
		if err != nil || ip.Unmap() != hc.Addr {
			return fmt.Errorf("%q: the host must be %s, this host's address in the hub config", adv, hc.Addr)
		}
	}
	return nil
}

// agentURL is host's agent URL: from the config, else as advertised. h.mu
// must be held.
func (h *Hub) agentURL(hc HostConfig) string {
	if hc.Agent != "" {
		return hc.Agent
	}
	if s := h.agents[hc.Name]; s != nil {
		return s.url
	}
	return ""
}

// seen notes that agent name called; h.mu must be held.
func (h *Hub) seen(name string, r *http.Request) *agentSeen {
	a := h.agents[name]
	if a == nil {
		a = &agentSeen{}
		h.agents[name] = a
	}
	a.last, a.addr = time.Now(), r.RemoteAddr
	return a
}

func (h *Hub) serveResults(w http.ResponseWriter, r *http.Request) {
	var b agent.Batch
	body := &countingReader{r: io.LimitReader(r.Body, agent.MaxBody)}
	if err := json.NewDecoder(body).Decode(&b); err != nil {
		if httpsafe.TooLarge(w, err) {
			return
		}
		http.Error(w, "bad batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !agent.CertAllows(r, b.Agent) {
		http.Error(w, "client certificate does not name agent "+b.Agent, http.StatusForbidden)
		return
	}
	reply, err := h.ingest(r.Context(), b, body.n, r)
	var over *overError
	if errors.As(err, &over) {
		if over.retry > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(over.retry.Seconds()))))
		}
		http.Error(w, over.Error(), over.status)
		return
	}
	if err != nil {
		h.logger().Error("storing agent results failed", "agent", b.Agent, "err", err)
		http.Error(w, "storing results failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, reply)
}

// update folds one result into its pair's state; h.mu must be held.
func (h *Hub) update(res agent.Result) {
	p := pair{res.Source, res.Target}
	c := h.cells[p]
	if c == nil {
		c = &cell{since: res.Time}
		h.cells[p] = c
	}
	if res.Time.Before(c.last.Time) {
		return // an old result from a buffer flush after a newer one
	}
	if c.last.Class != res.Class {
		c.since = res.Time
	}
	if res.Error == c.last.Error {
		res.Error = c.last.Error // a failing pair keeps one copy of its text, not one a result
	}
	c.add(res)
	c.last = res
}

// Agents lists the fleet's hosts, the config's and the registered ones,
// with what the hub knows of their agents.
func (h *Hub) Agents() []agent.AgentInfo {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]agent.AgentInfo, 0, len(h.members))
	for _, hc := range h.members {
		ai := agent.AgentInfo{Name: hc.Name, Addr: hc.Addr, Agent: h.agentURL(hc), Labels: hc.Labels,
			Registered: hc.registered}
		if s := h.agents[hc.Name]; s != nil {
			ai.LastSeen, ai.Dropped, ai.State = s.last, s.dropped, s.state
		}
		out = append(out, ai)
	}
	return out
}

func (h *Hub) serveAgents(w http.ResponseWriter, _ *http.Request) { writeJSON(w, h.Agents()) }

// Cell is the latest state of one source × target pair.
type Cell struct {
	Class probe.Class    `json:"class"`
	Since time.Time      `json:"since"` // when Class began
	Last  time.Time      `json:"last"`  // when the latest result was taken
	RTT   agent.Duration `json:"rtt"`
	Error string         `json:"error,omitempty"`
	// Stale is set when no result came for three intervals: the agent or
	// its link to the hub is down, and Class is old news.
	Stale bool `json:"stale"`
	// Cause is the doctor's cause id for a failing pair (Hub.Causes), e.g.
	// not-listening or firewall-drop; empty while open or undiagnosed.
	Cause string `json:"cause,omitempty"`
}

// Matrix is the connectivity matrix: Cells[i][j] is what Sources[i] saw of
// Targets[j]; nil where the config does not ask Sources[i] to probe it, or
// no result came yet.
type Matrix struct {
	Interval agent.Duration `json:"interval"`
	Sources  []string       `json:"sources"`
	Targets  []string       `json:"targets"`
	Cells    [][]*Cell      `json:"cells"`
	// Group is the label rows and columns are grouped by (MatrixBy);
	// SourceGroups[i] and TargetGroups[j] are Sources[i]'s and Targets[j]'s
	// value of it ("" without it). GroupKeys are the labels the hosts have.
	Group        string   `json:"group,omitempty"`
	SourceGroups []string `json:"source_groups,omitempty"`
	TargetGroups []string `json:"target_groups,omitempty"`
	GroupKeys    []string `json:"group_keys"`
}

// Matrix returns the current matrix, in the config's order.
func (h *Hub) Matrix() Matrix { return h.MatrixBy("") }

// noGroup is the group of hosts without the label, and of targets outside
// the fleet.
const noGroup = ""

// MatrixBy returns the current matrix with its rows and columns grouped by
// the hosts' label group (e.g. zone or role): sources by their own label,
// targets by their host's; hosts without it (and targets outside the
// fleet) come last. Within a group, the config's order stays. An empty
// group keeps the config's order alone.
func (h *Hub) MatrixBy(group string) Matrix {
	h.mu.RLock()
	interval := time.Duration(cmp.Or(h.cfg.Interval, 10*time.Second))
	m := Matrix{Interval: agent.Duration(interval), Sources: []string{}, Targets: []string{}, Group: group}
	labelOf := func(host string) string {
		i := slices.IndexFunc(h.members, func(hc HostConfig) bool { return hc.Name == host })
		if i < 0 || group == "" {
			return noGroup
		}
		return h.members[i].Labels[group]
	}
	var targets []agent.Target
	members := slices.Clone(h.members)
	for _, hc := range members {
		for _, t := range h.lists[hc.Name].Targets {
			if !slices.ContainsFunc(targets, func(o agent.Target) bool { return o.ID == t.ID }) {
				targets = append(targets, t)
			}
		}
	}
	byGroup := func(a, b string) int { // the hosts without the label last
		switch {
		case a == b:
			return 0
		case a == noGroup:
			return 1
		case b == noGroup:
			return -1
		}
		return strings.Compare(a, b)
	}
	slices.SortStableFunc(members, func(a, b HostConfig) int { return byGroup(labelOf(a.Name), labelOf(b.Name)) })
	hostIndex := func(name string) int {
		i := slices.IndexFunc(h.members, func(hc HostConfig) bool { return hc.Name == name })
		if i < 0 {
			return len(h.members) // outside the fleet: last
		}
		return i
	}
	slices.SortStableFunc(targets, func(a, b agent.Target) int {
		return cmp.Or(byGroup(labelOf(a.Host), labelOf(b.Host)), hostIndex(a.Host)-hostIndex(b.Host),
			a.Addr.Compare(b.Addr))
	})
	now := time.Now()
	for _, hc := range members {
		m.Sources = append(m.Sources, hc.Name)
		m.SourceGroups = append(m.SourceGroups, labelOf(hc.Name))
	}
	for _, t := range targets {
		m.Targets = append(m.Targets, t.ID)
		m.TargetGroups = append(m.TargetGroups, labelOf(t.Host))
	}
	for _, src := range m.Sources {
		row := make([]*Cell, len(targets))
		for j, t := range targets {
			c := h.cells[pair{src, t.ID}]
			if h.Shared != nil {
				if class, last, rtt, ok := h.Shared(src, t.ID); ok && (c == nil || last.After(c.last.Time)) {
					since := last
					if c != nil && c.last.Class == class {
						since = c.since
					}
					// The store gives another replica's pair a new last
					// sample only when its class changes or every 30 s;
					// while its agent calls a replica, the class shown is
					// the current one, not stale.
					fresh := last
					if a := h.agents[src]; a != nil && a.last.After(fresh) {
						fresh = a.last
					}
					row[j] = &Cell{Class: class, Since: since, Last: last, RTT: agent.Duration(rtt),
						Stale: now.Sub(fresh) > 3*interval}
					continue
				}
			}
			if c == nil {
				continue
			}
			row[j] = &Cell{
				Class: c.last.Class, Since: c.since, Last: c.last.Time, RTT: c.last.RTT, Error: c.last.Error,
				Stale: now.Sub(c.last.Time) > 3*interval,
			}
		}
		m.Cells = append(m.Cells, row)
	}
	h.mu.RUnlock()
	m.GroupKeys = h.labelKeys()
	// The causes are the monitor's: asked without the hub's lock held.
	for i, row := range m.Cells {
		for j, c := range row {
			if c != nil && c.Class != probe.Open && h.Causes != nil {
				c.Cause = h.Causes(m.Sources[i], m.Targets[j])
			}
		}
	}
	if group == "" {
		m.SourceGroups, m.TargetGroups = nil, nil
	}
	return m
}

// History returns the results the hub holds in memory for one pair, oldest
// first, their times in UTC.
func (h *Hub) History(source, target string) []agent.Result {
	h.mu.RLock()
	defer h.mu.RUnlock()
	p := pair{source, target}
	c := h.cells[p]
	if c == nil {
		return nil
	}
	return c.results(p)
}

// Pair names a connection an agent reported: Source dialled Target (a
// target id of its probe list) at Addr, and it ended in Class.
type Pair struct {
	Source, Target string
	Addr           netip.AddrPort
	Class          probe.Class
}

// Explanation is what the agent on a pair's target host sees of it.
type Explanation struct {
	// Host is the target host's name in the config; empty for a target
	// outside the fleet. It is set also when Explain fails.
	Host string
	// Detail says what the doctor looked at there, also when it found
	// nothing; Findings are what it found.
	Detail   string
	Findings []doctor.Finding
	// Evidence is the target host's answer, judged for the source's address.
	Evidence doctor.HostEvidence
}

// Explain says what the agent on a pair's target host sees: the doctor's
// findings on that host, with the target's evidence judged for the
// source's address. The error is agent.ErrNoAgent when the config gives
// the target host no agent URL and it advertised none.
func (h *Hub) Explain(ctx context.Context, p Pair) (Explanation, error) {
	var x Explanation
	h.mu.RLock()
	var srcAddr netip.Addr
	var agentURL string
	if t, ok := h.target(p.Source, p.Target); ok {
		x.Host = t.Host
	}
	for _, hc := range h.members {
		switch hc.Name {
		case p.Source:
			srcAddr = hc.Addr
		case x.Host:
			agentURL = h.agentURL(hc)
		}
	}
	token := h.cfg.Token
	h.mu.RUnlock()
	if agentURL == "" {
		return x, fmt.Errorf("%w: %s (give its hosts entry an agent: URL)",
			agent.ErrNoAgent, cmp.Or(x.Host, p.Addr.Addr().String()))
	}
	hc := h.AgentClient
	if hc == nil {
		hc = &http.Client{Timeout: 3 * time.Second}
	}
	c, err := agent.NewClient(agentURL, token, hc)
	if err != nil {
		return x, err
	}
	if x.Evidence, err = c.EvidenceFor(ctx, srcAddr, p.Addr); err != nil {
		return x, err
	}
	x.Detail, x.Findings = doctor.Explain(x.Evidence, netip.AddrPortFrom(srcAddr, 0), p.Addr, p.Class)
	return x, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
