package baseline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/probe"
)

// DiffSchema names the JSON form of a Report.
const DiffSchema = "reach.baseline-diff/v1"

// Default thresholds of Slower: twice as slow and 50 ms more. Both must be
// passed, so a loopback port going from 0.05 to 0.2 ms (noise under load)
// is not slower, nor is a 300 ms link going to 340 ms.
const (
	DefaultSlowerFactor = 2.0
	DefaultSlowerBy     = 50 * time.Millisecond
)

// Threshold says when an open port that stays open counts as slower: its
// connect time now is at least Factor times the baseline's and at least By
// more. Zero fields take the defaults.
type Threshold struct {
	Factor float64
	By     time.Duration
}

func (t Threshold) factor() float64 {
	if t.Factor > 0 {
		return t.Factor
	}
	return DefaultSlowerFactor
}

func (t Threshold) by() time.Duration {
	if t.By > 0 {
		return t.By
	}
	return DefaultSlowerBy
}

// slower reports whether now is slower than was beyond t.
func (t Threshold) slower(wasMS, nowMS float64) bool {
	return nowMS >= wasMS*t.factor() && nowMS-wasMS >= ms(t.by())
}

// Kind sorts a change.
type Kind string

const (
	// Broken: open in the baseline, failing now.
	Broken Kind = "broken"
	// Opened: failing in the baseline (refused, dropped, ...), open now:
	// a firewall opened wider than it was, or a service started.
	Opened Kind = "newly-open"
	// Changed: failing then and now, differently (refused → timeout: a
	// DROP rule in front of a closed port).
	Changed Kind = "changed"
	// Slower: open then and now, slower beyond the threshold.
	Slower Kind = "slower"
)

// State is one pair's outcome at one time.
type State struct {
	Class     probe.Class  `json:"class"`
	Cause     doctor.Cause `json:"cause,omitempty"`
	ConnectMS float64      `json:"connect_ms"`
}

// Change is one pair that differs from its baseline.
type Change struct {
	Target
	Kind Kind  `json:"kind"`
	Was  State `json:"was"`
	Now  State `json:"now"`
	// Confidence, Issue, Evidence and Fix are the doctor's, for a pair that
	// broke or fails differently (Now.Cause is its cause id).
	Confidence doctor.Confidence `json:"confidence,omitempty"`
	Issue      string            `json:"issue,omitempty"`
	Evidence   string            `json:"evidence,omitempty"`
	Fix        string            `json:"fix,omitempty"`
	// Note says what a change likely means when the doctor was not asked.
	Note string `json:"note,omitempty"`
}

// Report is what Diff found. Its lists are never nil, so their JSON is
// [] when empty.
type Report struct {
	Schema string `json:"schema"`
	// Baseline is when and where the baseline was taken; TakenAt and Host
	// are the same of this measurement.
	Baseline Taken     `json:"baseline"`
	TakenAt  time.Time `json:"taken_at"`
	Host     string    `json:"host"`
	Broken   []Change  `json:"broken"`
	Opened   []Change  `json:"newly_open"`
	Changed  []Change  `json:"changed"`
	Slower   []Change  `json:"slower"`
	// Gone are the hub's pairs of the baseline its matrix no longer has (an
	// agent or target taken out of its config).
	Gone      []Target `json:"gone"`
	Unchanged int      `json:"unchanged"`
	Total     int      `json:"total"`
	// Undiagnosed counts broken and changed pairs of this host the doctor
	// was not run on (NoDiagnosis, or past MaxDiagnoses).
	Undiagnosed int `json:"undiagnosed"`
	// Stale counts the hub's pairs with no result newer than the diff's
	// start after two of the agents' intervals: compared as last seen.
	Stale int `json:"stale"`
	// Threshold is the slower rule applied.
	SlowerFactor float64 `json:"slower_factor"`
	SlowerByMS   float64 `json:"slower_by_ms"`
	DurationMS   float64 `json:"duration_ms"`
}

// Taken is when and where a baseline was taken.
type Taken struct {
	TakenAt time.Time `json:"taken_at"`
	Host    string    `json:"host"`
	From    string    `json:"from,omitempty"`
}

// Differs reports whether anything changed.
func (r *Report) Differs() bool {
	return len(r.Broken)+len(r.Opened)+len(r.Changed)+len(r.Slower)+len(r.Gone) > 0
}

// Compare sorts the entries measured now against the baseline's, matched
// by source, name, target and where they leave from. It only compares:
// Diff measures, and diagnoses what Compare calls broken or changed. A
// baseline entry missing from now is Gone; an entry of now without a
// baseline counterpart is ignored (Diff measures the baseline's set).
func Compare(base, now []Entry, th Threshold) *Report {
	r := &Report{Schema: DiffSchema, Broken: []Change{}, Opened: []Change{}, Changed: []Change{},
		Slower: []Change{}, Gone: []Target{}, Total: len(base), SlowerFactor: th.factor(), SlowerByMS: ms(th.by())}
	cur := make(map[string]Entry, len(now))
	for _, e := range now {
		cur[e.key()] = e
	}
	for _, b := range base {
		n, ok := cur[b.key()]
		if !ok {
			r.Gone = append(r.Gone, b.Target)
			continue
		}
		c := Change{Target: b.Target, Was: stateOf(b), Now: stateOf(n)}
		wasOpen, isOpen := b.Class == probe.Open, n.Class == probe.Open
		switch {
		case wasOpen && !isOpen:
			c.Kind = Broken
			r.Broken = append(r.Broken, c)
		case !wasOpen && isOpen:
			c.Kind = Opened
			c.Note = openedNote(b.Class)
			r.Opened = append(r.Opened, c)
		case !wasOpen && b.Class != n.Class:
			c.Kind = Changed
			r.Changed = append(r.Changed, c)
		case wasOpen && th.slower(b.ConnectMS, n.ConnectMS):
			c.Kind = Slower
			c.Note = fmt.Sprintf("connect time %.3g ms, was %.3g ms (%.1f×)", n.ConnectMS, b.ConnectMS,
				n.ConnectMS/max(b.ConnectMS, 0.001))
			r.Slower = append(r.Slower, c)
		default:
			r.Unchanged++
		}
	}
	return r
}

func stateOf(e Entry) State { return State{Class: e.Class, Cause: e.Cause, ConnectMS: e.ConnectMS} }

// openedNote says what a port that now accepts most likely means, by how
// it failed before.
func openedNote(was probe.Class) string {
	switch was {
	case probe.Timeout, probe.HostUnreachable:
		return "was filtered (" + string(was) + "), now accepts: a firewall rule opened it — " +
			"check it was meant to be open, or a rule is too wide"
	case probe.Refused:
		return "was refused, now accepts: a service started listening, or a firewall that " +
			"rejected it opened — check it should be reachable from here"
	}
	return "was " + string(was) + ", now accepts"
}

// DiffOptions configure Diff.
type DiffOptions struct {
	Options
	Slower Threshold
}

// Diff probes the baseline's set again and reports what changed. Pairs
// that broke or fail differently are diagnosed by the doctor (only those,
// up to MaxDiagnoses:
// a healthy set costs one probe per pair); a pair the doctor finds
// reachable after all (it flapped) is reported with its cause, reachable.
// Slower pairs are probed twice more and the fastest of the three counts,
// so one slow handshake under load is not a change.
func Diff(ctx context.Context, base *File, opt DiffOptions) (*Report, error) {
	o := &opt.Options
	if o.Timeout <= 0 && base.TimeoutMS > 0 {
		o.Timeout = time.Duration(base.TimeoutMS * float64(time.Millisecond))
	}
	var targets []Target
	agents := false
	for _, e := range base.Entries {
		if e.Source == LocalSource {
			targets = append(targets, e.Target)
		} else {
			agents = true
		}
	}
	rs, err := o.prepareAll(targets)
	if err != nil {
		return nil, err
	}
	h := o.Hub
	if agents && h == nil {
		h = &Hub{URL: base.Hub}
	}
	start, at := time.Now(), o.clock()
	// The agents' next round and this host's probes, at once.
	var fromHub []Entry
	var stale int
	var hubErr error
	var wg sync.WaitGroup
	if agents {
		wg.Go(func() { fromHub, stale, hubErr = h.fresh(ctx, start) })
	}
	now := o.measure(ctx, rs, targets)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("baseline: diff interrupted: %w", err)
	}
	if hubErr != nil {
		return nil, hubErr
	}
	index := make(map[string]int, len(targets))
	for i, t := range targets {
		index[t.key()] = i
	}
	confirmSlower(ctx, o, base.Entries, now, rs, index, opt.Slower)
	r := Compare(base.Entries, append(now, fromHub...), opt.Slower)
	r.Baseline = Taken{TakenAt: base.TakenAt, Host: base.Host, From: base.From}
	r.TakenAt, r.Host, r.Stale = at, o.hostname(), stale
	var idx []int
	var which []*Change
	for _, list := range [][]Change{r.Broken, r.Changed} {
		for k := range list {
			c := &list[k]
			i, local := index[c.key()]
			if !local {
				c.Note = fmt.Sprintf("as agent %s sees it; reach check %s --hub %s asks what the target's agent sees",
					c.Source, c.Target.Target, h.URL)
				continue
			}
			idx = append(idx, i)
			which = append(which, c)
		}
	}
	for k, rep := range o.diagnose(ctx, rs, idx) {
		if rep == nil {
			r.Undiagnosed++
			continue
		}
		which[k].explain(rep)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("baseline: diff interrupted: %w", err)
	}
	r.DurationMS = ms(time.Since(start))
	return r, nil
}

// confirmSlower probes each open pair that looks slower twice more and
// keeps its fastest connect time in now.
func confirmSlower(ctx context.Context, o *Options, base, now []Entry, rs []resolved, index map[string]int, th Threshold) {
	var again []int
	for _, b := range base {
		i, ok := index[b.key()]
		if ok && b.Class == probe.Open && now[i].Class == probe.Open && th.slower(b.ConnectMS, now[i].ConnectMS) {
			again = append(again, i)
		}
	}
	for range 2 {
		for _, i := range again {
			r := probe.Run(ctx, rs[i].ep, o.probeOptions(rs[i]))
			if r.Class == probe.Open && ms(r.RTT) < now[i].ConnectMS {
				now[i].ConnectMS = ms(r.RTT)
			}
		}
	}
}

// explain fills c from the doctor's report: its class and cause, and the
// finding that names the cause.
func (c *Change) explain(rep *doctor.Report) {
	if rep == nil {
		return
	}
	c.Now.Cause, c.Confidence = rep.Cause, rep.Confidence
	if rep.Class != "" {
		c.Now.Class = rep.Class
	}
	c.Issue = rep.Verdict
	for _, f := range rep.Findings {
		if f.Cause == rep.Cause {
			c.Issue, c.Evidence, c.Fix = f.Issue, f.Evidence, f.Fix
			break
		}
	}
	if rep.Reachable {
		c.Note = "the doctor's probes connected: the pair flaps"
	}
}
