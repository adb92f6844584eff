package hub

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/agent"
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
	for _, r := range agent.Reasons {
		m.rejected.WithLabelValues(string(r))
	}
	reg.MustRegister(m.rejected, m.truncated, m.unsequenced)
	return m
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

// ingest checks a batch, folds what passes into the matrix and hands it to
// the Sink. Nothing an agent sends names a series or a pair: targets are
// looked up in the agent's probe list and carry the config's id and
// address; classes are probe's own values.
func (h *Hub) ingest(ctx context.Context, b agent.Batch, r *http.Request) (
	agent.IngestReply, error) {
	var reply agent.IngestReply
	now := time.Now()
	h.mu.Lock()
	pl, ok := h.lists[b.Agent]
	if !ok {
		h.mu.Unlock()
		refuse(&reply, agent.RefusedUnknownAgent, len(b.Results))
		h.report(b.Agent, reply)
		return reply, nil
	}
	seen := h.seen(b.Agent, r)
	seen.dropped = b.Dropped
	skip, why := seen.admit(b, now)
	if why != "" {
		h.mu.Unlock()
		refuse(&reply, why, len(b.Results))
		h.report(b.Agent, reply)
		return reply, nil
	}
	refuse(&reply, agent.RefusedDuplicate, skip)
	reply.Next = seen.next
	legacy := b.Seq == 0 && !seen.warnedLegacy
	seen.warnedLegacy = seen.warnedLegacy || b.Seq == 0
	kept := make([]agent.Result, 0, len(b.Results)-skip)
	for _, res := range b.Results[skip:] {
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
	}
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
	if h.Sink != nil && len(kept) > 0 {
		if err := h.Sink.Ingest(ctx, kept); err != nil {
			return reply, err
		}
	}
	return reply, nil
}

// report counts a batch's refusals and logs them.
func (h *Hub) report(name string, reply agent.IngestReply) {
	h.Metrics.count(reply)
	if reply.Rejected == 0 && reply.Truncated == 0 {
		return
	}
	args := []any{"agent", name, "accepted", reply.Accepted, "truncated", reply.Truncated}
	for _, r := range agent.Reasons {
		if n := reply.Refused[r]; n > 0 {
			args = append(args, string(r), n)
		}
	}
	h.logger().Warn("agent results refused (see reach_hub_rejected_results_total)", args...)
}

// admit says how many of b's first results this run of the agent already
// sent (they are duplicates), or why the whole batch is refused, and
// advances the agent's sequence. An unsequenced batch is admitted whole
// until the agent sends a sequenced one. h.mu must be held.
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
	case b.Run > a.run: // the agent restarted, or this hub did
		a.run, a.next = b.Run, 0
	}
	if a.next > b.Seq {
		skip = int(min(n, a.next-b.Seq))
	}
	a.next = max(a.next, b.Seq+n)
	return skip, ""
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

// capText cuts s to at most n bytes at a rune boundary, marked, and copies
// it so the agent's long string is not kept alive by a slice of it.
func capText(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	const mark = " …(cut by the hub)"
	end := n - len(mark)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return strings.Clone(s[:end]) + mark, true
}
