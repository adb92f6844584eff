// Package baseline records the reachability of a set of endpoints and tells,
// later, what changed: the pre/post pair around a firewall change, a
// deployment or a network migration. Save probes every (source, target) of
// the set and keeps its class, the doctor's cause when it failed, and its
// connect time, in a versioned JSON file (Write, Read); Diff probes the same
// set again and sorts what differs into newly broken (diagnosed by the
// doctor, only those, so a diff of a healthy set stays fast), newly open (a
// port that refused or dropped and now accepts: a firewall opened too wide),
// failing differently, and slower beyond a threshold; the rest is counted
// as unchanged.
//
// Targets are probed from this host, whose name the file records, as
// source "local" (the monitor's name for what a host probes itself). A
// hub's whole matrix can be recorded too (Options.Hub): every (agent,
// target) pair as its agent last saw it, read through the hub's dashboard
// API; Diff then waits for the agents' next round of results.
package baseline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// Schema names the file format; Read refuses any other.
const Schema = "reach.baseline/v1"

// LocalSource is the source of what this host probes itself.
const LocalSource = "local"

// DefaultConcurrency bounds the probes in flight when Options leaves it zero.
const DefaultConcurrency = 256

// DefaultMaxDiagnoses bounds the doctor's runs of one Save or Diff when
// Options leaves it zero: a diagnosis takes up to about the timeout, eight
// at a time, so 100 take about 13 timeouts; past that the class says enough
// to start with, and reach check explains any one of the rest.
const DefaultMaxDiagnoses = 100

// Target is one (source, target) pair of the set: what to probe and how.
type Target struct {
	// Source is who probes: LocalSource for this host.
	Source string `json:"source"`
	// Name is the endpoint's name in a reach watch config; may be empty.
	Name string `json:"name,omitempty"`
	// Target is host:port as given ([v6]:port for IPv6).
	Target string `json:"target"`
	// SourceAddr and Interface are where the probes leave from, when set.
	SourceAddr string `json:"source_addr,omitempty"`
	Interface  string `json:"interface,omitempty"`
	// TimeoutMS bounds this target's probes; 0 uses the file's timeout.
	TimeoutMS float64 `json:"timeout_ms,omitempty"`
}

// key identifies a target across two measurements.
func (t Target) key() string {
	return t.Source + "\x00" + t.Name + "\x00" + t.Target + "\x00" + t.SourceAddr + "\x00" + t.Interface
}

// String names the pair for people: "web-1 → db:5432", or the target alone
// from this host, with its name when it has one.
func (t Target) String() string {
	s := t.Target
	if t.Name != "" {
		s = t.Name + " (" + t.Target + ")"
	}
	if t.SourceAddr != "" {
		s += " from " + t.SourceAddr
	}
	if t.Source != LocalSource {
		s = t.Source + " → " + s
	}
	return s
}

// Entry is what one pair did when measured.
type Entry struct {
	Target
	Class probe.Class `json:"class"`
	// Cause is the doctor's cause id for a failure ("reachable" when open);
	// empty when it was not diagnosed.
	Cause doctor.Cause `json:"cause,omitempty"`
	// ConnectMS is the connect time of an open port, in milliseconds.
	ConnectMS float64 `json:"connect_ms"`
	// Addr is the address dialled, when the name resolved.
	Addr string `json:"addr,omitempty"`
}

// File is a baseline: where and when it was taken, and every entry.
type File struct {
	Schema string `json:"schema"`
	// TakenAt is when the probes started (UTC); Host the name of the host
	// that probed, and From what the set was read from (targets, a list
	// file, a watch config).
	TakenAt time.Time `json:"taken_at"`
	Host    string    `json:"host"`
	From    string    `json:"from,omitempty"`
	// Hub is the base URL of the hub whose matrix the file holds (the
	// entries whose source is an agent); never its token.
	Hub string `json:"hub,omitempty"`
	// TimeoutMS bounds each probe of an entry that names none.
	TimeoutMS  float64 `json:"timeout_ms"`
	DurationMS float64 `json:"duration_ms"`
	// Undiagnosed counts failures left without a cause (Options.MaxDiagnoses).
	Undiagnosed int     `json:"undiagnosed,omitempty"`
	Entries     []Entry `json:"entries"`
}

// Targets returns the file's set, for probing it again.
func (f *File) Targets() []Target {
	ts := make([]Target, len(f.Entries))
	for i, e := range f.Entries {
		ts[i] = e.Target
	}
	return ts
}

// Options configure Save and Diff. The zero value probes with
// probe.DefaultTimeout, DefaultConcurrency at a time, through the system's
// dialer and resolver, and diagnoses failures with the doctor's defaults.
type Options struct {
	// Timeout bounds each probe of a target that names none.
	Timeout time.Duration
	// Concurrency bounds the probes in flight.
	Concurrency int
	// Dial and Resolver are passed to the probes and to the doctor.
	Dial     probe.DialFunc
	Resolver *net.Resolver
	// Doctor is the template of each diagnosis: its Timeout, Dial,
	// Resolver, Source and Interface are set from the target's.
	Doctor doctor.Options
	// NoDiagnosis records classes only: Save leaves causes empty and Diff
	// names no cause for what broke (both are then as fast as the probes).
	NoDiagnosis bool
	// MaxDiagnoses bounds the doctor's runs: failures past it keep their
	// class only (in the order given). Zero means DefaultMaxDiagnoses,
	// negative no limit.
	MaxDiagnoses int
	// Hub, when set, adds its whole matrix to what Save records: every
	// (agent, target) pair with a result, as the agents see it. Diff reads
	// the matrix again from it (or from the file's hub URL, without a
	// token, when it is nil).
	Hub *Hub
	// Progress, when set, is called as probes and diagnoses finish, with
	// what is being done ("probing", "diagnosing") and how far it is.
	Progress func(phase string, done, total int)
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// now and host replace the clock and os.Hostname in tests.
	now  func() time.Time
	host func() (string, error)
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return probe.DefaultTimeout
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o *Options) clock() time.Time {
	if o.now != nil {
		return o.now().UTC()
	}
	return time.Now().UTC()
}

func (o *Options) hostname() string {
	h := os.Hostname
	if o.host != nil {
		h = o.host
	}
	name, err := h()
	if err != nil {
		return "unknown"
	}
	return name
}

func (o *Options) progress(phase string, done, total int) {
	if o.Progress != nil {
		o.Progress(phase, done, total)
	}
}

// ErrTarget marks a target that cannot be probed as written.
var ErrTarget = errors.New("baseline: bad target")

// resolved is a Target made ready to probe.
type resolved struct {
	ep      endpoint.Endpoint
	source  netip.Addr
	iface   string
	timeout time.Duration
}

func (o *Options) prepare(t Target) (resolved, error) {
	if t.Source != LocalSource {
		return resolved{}, fmt.Errorf("%w: %s: source %q: this host probes only what it reaches itself (source %q)",
			ErrTarget, t.Target, t.Source, LocalSource)
	}
	ep, err := endpoint.ParseEndpoint(t.Target, 0)
	if err != nil {
		return resolved{}, fmt.Errorf("%w: %w", ErrTarget, err)
	}
	r := resolved{ep: ep, iface: t.Interface, timeout: o.timeout()}
	if t.TimeoutMS > 0 {
		r.timeout = time.Duration(t.TimeoutMS * float64(time.Millisecond))
	}
	if t.SourceAddr != "" {
		if r.source, err = netip.ParseAddr(t.SourceAddr); err != nil {
			return resolved{}, fmt.Errorf("%w: %s: source_addr %q: %w", ErrTarget, t.Target, t.SourceAddr, err)
		}
	}
	return r, nil
}

func (o *Options) probeOptions(r resolved) probe.Options {
	return probe.Options{Timeout: r.timeout, Dial: o.Dial, Resolver: o.Resolver, Source: r.source, Interface: r.iface}
}

func (o *Options) doctorOptions(r resolved) doctor.Options {
	d := o.Doctor
	d.Timeout = r.timeout
	if o.Dial != nil && d.Dial == nil {
		d.Dial = o.Dial
	}
	if o.Resolver != nil && d.Resolver == nil {
		d.Resolver = o.Resolver
	}
	d.Source, d.Interface = r.source, r.iface
	return d
}

// measure probes every target once, Concurrency at a time, and returns an
// entry per target in the order given (without causes).
func (o *Options) measure(ctx context.Context, rs []resolved, ts []Target) []Entry {
	out := make([]Entry, len(rs))
	n := o.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	n = min(n, max(len(rs), 1))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range n {
		wg.Go(func() {
			for i := range next {
				out[i] = entryOf(ts[i], probe.Run(ctx, rs[i].ep, o.probeOptions(rs[i])))
				mu.Lock()
				done++
				d := done
				mu.Unlock()
				if d%256 == 0 || d == len(rs) {
					o.progress("probing", d, len(rs))
				}
			}
		})
	}
	for i := range rs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func entryOf(t Target, r probe.Result) Entry {
	e := Entry{Target: t, Class: r.Class}
	if r.Addr.IsValid() {
		e.Addr = r.Addr.String()
	}
	if r.Class == probe.Open {
		e.ConnectMS = ms(r.RTT)
		e.Cause = doctor.Reachable
	}
	return e
}

func (o *Options) maxDiagnoses() int {
	switch {
	case o.NoDiagnosis:
		return 0
	case o.MaxDiagnoses == 0:
		return DefaultMaxDiagnoses
	case o.MaxDiagnoses < 0:
		return MaxEntries
	}
	return o.MaxDiagnoses
}

// diagnose runs the doctor on the entries at idx, at most maxDiagnoses of
// them, and returns its reports in the same order: nil for those past it.
func (o *Options) diagnose(ctx context.Context, rs []resolved, idx []int) []*doctor.Report {
	reports := make([]*doctor.Report, len(idx))
	idx = idx[:min(len(idx), o.maxDiagnoses())]
	if len(idx) == 0 {
		return reports
	}
	// RunMany takes one set of options; targets with their own timeout or
	// source are grouped by them.
	type group struct {
		opt  doctor.Options
		eps  []endpoint.Endpoint
		slot []int
	}
	var groups []*group
	byKey := map[string]*group{}
	for k, i := range idx {
		r := rs[i]
		key := fmt.Sprint(r.timeout, r.source, r.iface)
		g := byKey[key]
		if g == nil {
			g = &group{opt: o.doctorOptions(r)}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.eps = append(g.eps, r.ep)
		g.slot = append(g.slot, k)
	}
	done := 0
	for _, g := range groups {
		for j, rep := range doctor.RunMany(ctx, g.eps, g.opt) {
			reports[g.slot[j]] = rep
			done++
			o.progress("diagnosing", done, len(idx))
		}
	}
	return reports
}

// Save probes every target and returns the baseline; a target that failed
// is diagnosed (up to MaxDiagnoses) so the file says why. It fails only on
// a target it cannot probe as written (ErrTarget) or an empty set; a
// cancelled ctx is its error, with nothing saved.
func Save(ctx context.Context, targets []Target, opt Options) (*File, error) {
	if len(targets) == 0 && opt.Hub == nil {
		return nil, fmt.Errorf("%w: no targets", ErrTarget)
	}
	rs, err := opt.prepareAll(targets)
	if err != nil {
		return nil, err
	}
	f := &File{Schema: Schema, TakenAt: opt.clock(), Host: opt.hostname(), TimeoutMS: ms(opt.timeout())}
	start := time.Now()
	var fromHub []Entry
	if opt.Hub != nil {
		if fromHub, err = opt.Hub.Matrix(ctx); err != nil {
			return nil, err
		}
		f.Hub = redact(opt.Hub.URL)
	}
	f.Entries = opt.measure(ctx, rs, targets)
	var failed []int
	for i, e := range f.Entries {
		if e.Class != probe.Open {
			failed = append(failed, i)
		}
	}
	for k, rep := range opt.diagnose(ctx, rs, failed) {
		if rep == nil {
			f.Undiagnosed++
			continue
		}
		f.Entries[failed[k]].Cause = rep.Cause
	}
	f.Entries = append(f.Entries, fromHub...)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("baseline: interrupted, nothing saved: %w", err)
	}
	f.DurationMS = ms(time.Since(start))
	opt.logger().Debug("baseline saved", "entries", len(f.Entries), "took", time.Since(start))
	return f, nil
}

func (o *Options) prepareAll(targets []Target) ([]resolved, error) {
	rs := make([]resolved, len(targets))
	seen := make(map[string]bool, len(targets))
	for i, t := range targets {
		if t.Source == "" {
			t.Source = LocalSource
			targets[i] = t
		}
		if seen[t.key()] {
			return nil, fmt.Errorf("%w: %s is listed twice", ErrTarget, t)
		}
		seen[t.key()] = true
		r, err := o.prepare(t)
		if err != nil {
			return nil, err
		}
		rs[i] = r
	}
	return rs, nil
}

// redact drops a URL's user information, query and fragment: a file
// keeps where the hub is, never a credential.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return strings.TrimRight(u.String(), "/")
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Nanoseconds())/1e3) / 1e3 }
