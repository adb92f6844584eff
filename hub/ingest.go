package hub

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/netwatch"
	"github.com/reach-tools/reach/probe"
)

// Bounds the hub holds agents' results to; the agent package's MaxErrorText
// and MaxErrno are the others.
const (
	// RTTMargin is how much longer than its pair's timeout a result's rtt
	// may be: the agent measures around a dial its timeout ends, and a busy
	// host adds scheduling delay, never seconds of it.
	RTTMargin = time.Second
	// MaxSkew is how far ahead of the hub's clock a result may be taken. Up
	// to it, the time is taken as the hub's now (so nothing is "future" on
	// the dashboard); beyond it, the agent's clock is wrong and the result
	// is refused.
	MaxSkew = time.Minute
	// maxWindow caps how old a result may be, whatever the probe list says.
	maxWindow = 366 * 24 * time.Hour
)

// Limits bound what one agent may send the hub, so that no token holder
// can flood the store and push out other agents' samples. Over a limit, the
// batch is refused whole, with 429 and Retry-After: a real agent keeps its
// results and sends them later. The zero value of each field is its
// default.
type Limits struct {
	// Results is the steady rate of results per second an agent may send:
	// by default ten times what its probe list makes it produce, and at
	// least 100/s, so a buffer drains after an outage.
	Results float64
	// Burst is how many results it may send at once: by default two full
	// batches (2 × agent.MaxBatch).
	Burst int
	// Bytes is the steady rate of batch bytes per second: by default 1 MiB
	// (a result is about 200 bytes; the rest is error text to be cut).
	Bytes float64
	// BytesBurst is how many bytes at once: by default 8 × agent.MaxBody.
	BytesBurst int
}

// budgets returns the agent's limiters, set to the limits for pl. h.mu
// must be held.
func (l Limits) budgets(a *agentSeen, pl agent.ProbeList) (results, bytes *rate.Limiter) {
	perSec := 10 * float64(len(pl.Targets)) / time.Duration(pl.Interval).Seconds()
	r := rate.Limit(cmp.Or(l.Results, max(100, perSec)))
	burst := cmp.Or(l.Burst, 2*agent.MaxBatch)
	br, bb := rate.Limit(cmp.Or(l.Bytes, 1<<20)), cmp.Or(l.BytesBurst, 8*agent.MaxBody)
	if a.results == nil {
		a.results, a.bytes = rate.NewLimiter(r, burst), rate.NewLimiter(br, bb)
	}
	// A reload may change the list: the budget follows it.
	a.results.SetLimit(r)
	a.results.SetBurst(burst)
	a.bytes.SetLimit(br)
	a.bytes.SetBurst(bb)
	return a.results, a.bytes
}

// overError is a batch refused whole for a limit: its HTTP status, and
// when to try again.
type overError struct {
	status int
	retry  time.Duration
	msg    string
}

func (e *overError) Error() string { return e.msg }

// take takes n from lim, or says how long until there is room; n beyond
// the burst never fits.
func take(lim *rate.Limiter, n int, now time.Time) (ok bool, retry time.Duration) {
	res := lim.ReserveN(now, n)
	if !res.OK() {
		return false, time.Minute
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Window is how old a result in a batch from an agent with probe list pl
// may be: the span the agent's buffer holds (agent.DefaultBuffer results,
// len(pl.Targets) of them per interval), plus one interval and MaxSkew for
// the report and the clocks. Older results cannot come from a real agent's
// buffer. An agent run with a larger --buffer than the default has its
// oldest results refused after an outage longer than this.
func Window(pl agent.ProbeList) time.Duration {
	interval := time.Duration(pl.Interval)
	n := max(1, len(pl.Targets))
	span := float64(agent.DefaultBuffer) * float64(interval) / float64(n)
	if span > float64(maxWindow) {
		return maxWindow
	}
	return time.Duration(span) + interval + MaxSkew
}

// Metrics are the hub's Prometheus series. Register them on your own
// registry with NewMetrics; a nil *Metrics counts nothing.
type Metrics struct {
	rejected    *prometheus.CounterVec
	truncated   prometheus.Counter
	unsequenced prometheus.Counter
	// Registered agents: how many in each state, and each one's last call.
	agents   *prometheus.GaugeVec
	lastSeen *prometheus.GaugeVec
	stale    *prometheus.GaugeVec
}

// NewMetrics creates the hub's metrics and registers them on reg. Every
// reason starts at 0, so a dashboard shows them before the first refusal.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reach_hub_rejected_results_total",
			Help: "Results from agents the hub refused, by reason; none was stored.",
		}, []string{"reason"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reach_hub_truncated_errors_total",
			Help: "Accepted results whose error text was cut to " +
				strconv.Itoa(agent.MaxErrorText) + " bytes.",
		}),
		unsequenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reach_hub_unsequenced_batches_total",
			Help: "Batches accepted without sequence numbers (agents that predate them), " +
				"so without protection against replays.",
		}),
	}
	m.agents = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reach_hub_registered_agents",
		Help: "Agents that registered with the hub, by state: up (calls in time), stale (silent " +
			"past registration.stale_after), alerting (stale past alert_after as well).",
	}, []string{"state"})
	m.lastSeen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reach_hub_agent_last_seen_timestamp_seconds",
		Help: "When each registered agent last called the hub.",
	}, []string{"agent"})
	m.stale = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reach_hub_agent_stale",
		Help: "1 while a registered agent is silent past registration.stale_after, else 0.",
	}, []string{"agent"})
	for _, r := range agent.Reasons {
		m.rejected.WithLabelValues(string(r))
	}
	m.agentStates(nil)
	reg.MustRegister(m.rejected, m.truncated, m.unsequenced, m.agents, m.lastSeen, m.stale)
	return m
}

// agentStates sets how many registered agents are in each state ("" is up).
func (m *Metrics) agentStates(n map[string]int) {
	if m == nil {
		return
	}
	m.agents.WithLabelValues("up").Set(float64(n[""]))
	m.agents.WithLabelValues(agent.StateStale).Set(float64(n[agent.StateStale]))
	m.agents.WithLabelValues(agent.StateAlerting).Set(float64(n[agent.StateAlerting]))
}

func (m *Metrics) agentSeen(name string, last time.Time, stale bool) {
	if m == nil {
		return
	}
	m.lastSeen.WithLabelValues(name).Set(float64(last.UnixMilli()) / 1000)
	v := 0.0
	if stale {
		v = 1
	}
	m.stale.WithLabelValues(name).Set(v)
}

func (m *Metrics) forgetAgent(name string) {
	if m == nil {
		return
	}
	m.lastSeen.DeleteLabelValues(name)
	m.stale.DeleteLabelValues(name)
}

func (m *Metrics) countUnsequenced() {
	if m != nil {
		m.unsequenced.Inc()
	}
}

// count adds a reply's refusals and truncations to the metrics.
func (m *Metrics) count(reply agent.IngestReply) {
	if m == nil {
		return
	}
	for r, n := range reply.Refused {
		m.rejected.WithLabelValues(string(r)).Add(float64(n))
	}
	m.truncated.Add(float64(reply.Truncated))
}

// refuse counts n results refused for r in the reply.
func refuse(reply *agent.IngestReply, r agent.Reason, n int) {
	if n == 0 {
		return
	}
	if reply.Refused == nil {
		reply.Refused = map[agent.Reason]int{}
	}
	reply.Refused[r] += n
	reply.Rejected += n
}

// ingest checks a batch of size bytes, folds what passes into the matrix
// and hands it to the Sink. Nothing an agent sends names a series or a
// pair: targets are looked up in the agent's probe list and carry the
// config's id and address; classes are probe's own values. A batch over a
// limit is refused whole with an *overError; its results are counted.
func (h *Hub) ingest(ctx context.Context, b agent.Batch, size int64, r *http.Request) (
	agent.IngestReply, error) {
	var reply agent.IngestReply
	now := time.Now()
	whole := func(why agent.Reason, err error) (agent.IngestReply, error) {
		refuse(&reply, why, len(b.Results))
		h.report(b.Agent, reply)
		return reply, err
	}
	h.gate.RLock() // until the Sink has the batch: see Hub.gate
	defer h.gate.RUnlock()
	h.mu.Lock()
	pl, ok := h.lists[b.Agent]
	if !ok {
		h.mu.Unlock()
		return whole(agent.RefusedUnknownAgent, nil)
	}
	seen := h.seen(b.Agent, r)
	results, bytes := h.Limits.budgets(seen, pl)
	// Every body read costs, also one refused for its size.
	if ok, retry := take(bytes, int(size), now); !ok {
		h.mu.Unlock()
		return whole(agent.RefusedBytes, &overError{status: http.StatusTooManyRequests, retry: retry,
			msg: fmt.Sprintf("agent %s sent more than its %.0f bytes/s (burst %d); retry in %v",
				b.Agent, float64(bytes.Limit()), bytes.Burst(), retry.Round(time.Millisecond))})
	}
	if len(b.Results) > agent.MaxBatch {
		h.mu.Unlock()
		return whole(agent.RefusedTooLarge, &overError{status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("a batch of %d results; send at most %d", len(b.Results), agent.MaxBatch)})
	}
	seen.dropped = b.Dropped
	skip, why := seen.admit(b, now)
	if why != "" {
		h.mu.Unlock()
		return whole(why, nil)
	}
	// Only new results cost: a resend of what the hub has is cheap.
	if ok, retry := take(results, len(b.Results)-skip, now); !ok {
		h.mu.Unlock()
		return whole(agent.RefusedRate, &overError{status: http.StatusTooManyRequests, retry: retry,
			msg: fmt.Sprintf("agent %s sent more than its %.0f results/s (burst %d); retry in %v",
				b.Agent, float64(results.Limit()), results.Burst(), retry.Round(time.Millisecond))})
	}
	prevRun, prevNext := seen.run, seen.next
	seen.advance(b)
	refuse(&reply, agent.RefusedDuplicate, skip)
	reply.Next, reply.List = seen.next, pl.Version
	legacy := b.Seq == 0 && !seen.warnedLegacy
	seen.warnedLegacy = seen.warnedLegacy || b.Seq == 0
	kept := make([]agent.Result, 0, len(b.Results)-skip)
	var seqs []uint64
	for i, res := range b.Results[skip:] {
		res, why, cut := check(pl, res, now)
		if why != "" {
			refuse(&reply, why, 1)
			continue
		}
		if cut {
			reply.Truncated++
		}
		res.Source = pl.Agent
		h.update(res)
		kept = append(kept, res)
		if b.Seq != 0 {
			seqs = append(seqs, b.Seq+uint64(skip+i))
		}
	}
	changes := checkChanges(pl, seen, b.Changes, now)
	h.mu.Unlock()
	reply.Accepted = len(kept)
	h.report(b.Agent, reply)
	if b.Seq == 0 {
		h.Metrics.countUnsequenced()
	}
	if legacy {
		h.logger().Warn("agent sends no sequence numbers (it predates them): its batches are "+
			"accepted without protection against replays and duplicates; upgrade it", "agent", b.Agent)
	}
	if cs, ok := h.Sink.(ChangeSink); ok && len(changes) > 0 {
		rounds := time.Duration(cmp.Or(pl.Recheck, agent.DefaultRecheck))
		cs.NoteChanges(pl.Agent, changes, rounds*(time.Duration(pl.Timeout)+agent.RecheckGap)+time.Second)
	}
	if h.Sink != nil && len(kept) > 0 {
		var err error
		if ss, ok := h.Sink.(SequencedSink); ok && b.Seq != 0 {
			err = ss.IngestSeq(ctx, b.Run, seqs, kept)
		} else {
			err = h.Sink.Ingest(ctx, kept)
		}
		if err != nil {
			// The agent keeps the batch and sends it again: it must not
			// then be taken for a duplicate.
			h.mu.Lock()
			if seen.run == b.Run && seen.next == b.Seq+uint64(len(b.Results)) {
				seen.run, seen.next = prevRun, prevNext
			}
			h.mu.Unlock()
			return reply, err
		}
	}
	return reply, nil
}

// warnEvery bounds the warnings about one agent's refused results (and
// about unknown agents, together): the metric counts every refusal, the log
// says it at most once a minute, so a hostile sender cannot flood it.
const warnEvery = time.Minute

// report counts a batch's refusals and logs them, at most every warnEvery.
func (h *Hub) report(name string, reply agent.IngestReply) {
	h.Metrics.count(reply)
	if reply.Rejected == 0 && reply.Truncated == 0 || !h.mayWarn(name) {
		return
	}
	name, _ = capText(name, 64) // an unknown agent's name is anybody's string
	args := []any{"agent", name, "accepted", reply.Accepted, "truncated", reply.Truncated}
	for _, r := range agent.Reasons {
		if n := reply.Refused[r]; n > 0 {
			args = append(args, string(r), n)
		}
	}
	h.logger().Warn("agent results refused (see reach_hub_rejected_results_total; "+
		"more in the next minute are only counted)", args...)
}

// mayWarn says whether a warning about agent name is due, and notes it.
func (h *Hub) mayWarn(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last := &h.unknownWarned
	if a := h.agents[name]; a != nil {
		last = &a.warned
	}
	if now := time.Now(); now.Sub(*last) >= warnEvery {
		*last = now
		return true
	}
	return false
}

// admit says how many of b's first results this run of the agent already
// sent (they are duplicates), or why the whole batch is refused. An
// unsequenced batch is admitted whole until the agent sends a sequenced
// one. advance records b once it is taken. h.mu must be held.
func (a *agentSeen) admit(b agent.Batch, now time.Time) (skip int, why agent.Reason) {
	n := uint64(len(b.Results))
	switch {
	case b.Run == 0 && b.Seq == 0:
		if a.run != 0 {
			return len(b.Results), agent.RefusedUnsequenced
		}
		return 0, ""
	case b.Run <= 0 || b.Seq == 0 || b.Seq > math.MaxUint64-n ||
		time.Unix(0, b.Run).After(now.Add(MaxSkew)):
		return len(b.Results), agent.RefusedSequence
	case b.Run < a.run:
		return len(b.Results), agent.RefusedOldRun
	case b.Run == a.run && a.next > b.Seq:
		return int(min(n, a.next-b.Seq)), ""
	}
	return 0, "" // a later run: the agent restarted, or this hub did
}

// advance notes that the hub has b's results. h.mu must be held.
func (a *agentSeen) advance(b agent.Batch) {
	if b.Seq == 0 {
		return
	}
	if b.Run > a.run {
		a.run, a.next = b.Run, 0
	}
	a.next = max(a.next, b.Seq+uint64(len(b.Results)))
}

// check returns res as the hub stores it, or the reason it is refused.
// cut is set when its error text was cut to agent.MaxErrorText. The
// target's id and address are the probe list's, not the agent's strings.
func check(pl agent.ProbeList, res agent.Result, now time.Time) (
	out agent.Result, why agent.Reason, cut bool) {
	i := slices.IndexFunc(pl.Targets, func(t agent.Target) bool { return t.ID == res.Target })
	if i < 0 {
		return out, agent.RefusedUnassigned, false
	}
	c := slices.Index(probe.Classes, res.Class)
	switch {
	case c < 0:
		return out, agent.RefusedClass, false
	case res.RTT < 0 || time.Duration(res.RTT) > time.Duration(pl.Timeout)+RTTMargin:
		return out, agent.RefusedRTT, false
	case res.Errno < 0 || res.Errno > agent.MaxErrno:
		return out, agent.RefusedErrno, false
	case res.Time.Before(now.Add(-Window(pl))):
		return out, agent.RefusedTooOld, false
	case res.Time.After(now.Add(MaxSkew)):
		return out, agent.RefusedFuture, false
	}
	out = agent.Result{Target: pl.Targets[i].ID, Addr: pl.Targets[i].Addr, Class: probe.Classes[c],
		Errno: res.Errno, RTT: res.RTT, Time: res.Time}
	if out.Time.After(now) {
		out.Time = now // within the skew allowed: not "future" on the dashboard
	}
	out.Error, cut = capText(res.Error, agent.MaxErrorText)
	return out, "", cut
}

// maxChangeText bounds the text of one change an agent reports.
const maxChangeText = 200

// checkChanges keeps the network changes an agent may tell: at most
// agent.MaxChanges, newer than the last it told, within the window its
// results must be in, of kinds netwatch makes, naming only targets of its
// list; texts are cut. Nothing else is trusted: the hub words the summary.
func checkChanges(pl agent.ProbeList, seen *agentSeen, cs []agent.NetChange, now time.Time) []agent.NetChange {
	var out []agent.NetChange
	for _, c := range cs[:min(len(cs), agent.MaxChanges)] {
		if !c.Time.After(seen.lastChange) || c.Time.Before(now.Add(-Window(pl))) ||
			c.Time.After(now.Add(MaxSkew)) || c.Count < 1 {
			continue
		}
		seen.lastChange = c.Time
		kept := agent.NetChange{Time: c.Time, Count: c.Count, Targets: []string{}}
		for _, ch := range c.Changes[:min(len(c.Changes), netwatch.MaxKept)] {
			switch ch.Kind {
			case netwatch.KindRoute, netwatch.KindAddress, netwatch.KindLink, netwatch.KindFirewall,
				netwatch.KindOverflow:
			default:
				continue
			}
			ch.Detail, _ = capText(ch.Detail, maxChangeText)
			ch.Op, _ = capText(ch.Op, 16)
			kept.Changes = append(kept.Changes, ch)
		}
		if len(kept.Changes) == 0 {
			continue
		}
		kept.Count = max(kept.Count, len(kept.Changes))
		for _, id := range c.Targets {
			i := slices.IndexFunc(pl.Targets, func(t agent.Target) bool { return t.ID == id })
			if i >= 0 && !slices.Contains(kept.Targets, pl.Targets[i].ID) {
				kept.Targets = append(kept.Targets, pl.Targets[i].ID)
			}
		}
		out = append(out, kept)
	}
	return out
}

// capText cuts s to at most n bytes at a rune boundary, marked, and copies
// it so the agent's long string is not kept alive by a slice of it.
func capText(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	mark := " …(cut by the hub)"
	if n < 2*len(mark) {
		mark = "" // too short a cap to say so
	}
	end := max(0, n-len(mark))
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return strings.Clone(s[:end]) + mark, true
}
