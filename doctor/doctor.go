// Package doctor explains why a TCP endpoint cannot be reached. It walks a
// ladder of checks (name resolution, route, TCP probes, ICMP echo, the
// target host's sockets and firewall, where its nat rules and userland
// proxies send the connection and what listens there, in which container,
// the path, the kernel's counters before and after the probes), each of
// which reports what it looked at, and turns the evidence into findings: an
// issue, the evidence for it and a fix, each with a stable cause id (see
// Cause). Run diagnoses one endpoint, RunMany several at once, and RunFrom
// runs the ladder from inside another network namespace (a container's).
//
// Local evidence (sockets, processes, firewall rules) exists only when the
// target is this host, or when a RemoteEvidence source (an agent on the
// target host) can be asked. Without it the doctor does not pretend: it
// lists the possible causes in order of likelihood and says what would tell
// them apart. A cause is confirmed only when the evidence rules the others
// out: what could not be read (rules without root, a container's namespace)
// lowers it, and the report says why.
package doctor

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// Run diagnoses ep and returns the report. It never fails: a check that
// cannot run says so in its record.
//
// It walks the ladder stage by stage; the checks of a stage run at once,
// each on the evidence of the checks it reads, and the findings of every
// check, with the evidence, make the report.
func Run(ctx context.Context, ep endpoint.Endpoint, opt Options) *Report {
	start := time.Now()
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ladder := opt.Ladder
	if ladder == nil {
		ladder = DefaultLadder()
	}
	// The first stage (name resolution) may take Timeout; the stages after
	// it share Timeout plus 15%: probes take Timeout, the rest gets a
	// bounded share more. So a slow lookup does not starve the probes.
	var rest time.Time
	stageCtx := func(n int) (context.Context, context.CancelFunc) {
		if n == 0 {
			return context.WithTimeout(ctx, opt.timeout())
		}
		if rest.IsZero() {
			rest = time.Now().Add(opt.timeout() + opt.timeout()*3/20)
		}
		return context.WithDeadline(ctx, rest)
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	s := &State{Target: ep, Options: opt, bg: bg}
	var records []CheckRecord
	var findings []Finding
	for n, stage := range ladder {
		sctx, cancel := stageCtx(n)
		recs, fs := runStage(sctx, s, stage, log)
		cancel()
		records, findings = append(records, recs...), append(findings, fs...)
	}
	if d, fs, ok := s.Hold.wait(ctx, s); ok {
		// The hold is the tcp check's, finished late.
		if i := slices.IndexFunc(records, func(r CheckRecord) bool { return r.Name == "tcp" }); i >= 0 {
			records[i].Detail += "; " + d
			if len(fs) > 0 {
				records[i].Status = Fail
			}
		}
		findings = append(findings, fs...)
	}
	r := diagnose(s, findings)
	r.Checks = records
	r.DurationMS = ms(time.Since(start))
	return r
}

// runStage runs the checks of a stage at once, each on a view of s that
// holds the evidence of the checks it reads, then keeps in s the evidence
// each one owns, for the stages after it. It returns the checks' records
// and findings in the stage's order.
func runStage(ctx context.Context, s *State, stage Stage, log *slog.Logger) ([]CheckRecord, []Finding) {
	views := make([]*State, len(stage))
	results := make([]CheckResult, len(stage))
	took := make([]time.Duration, len(stage))
	each(len(stage), func(i int) {
		views[i] = s.view(stage[i].Reads())
		t0 := time.Now()
		results[i] = stage[i].Run(ctx, views[i])
		took[i] = time.Since(t0)
	})
	var records []CheckRecord
	var findings []Finding
	for i, c := range stage {
		s.take(c.Name(), views[i])
		res := results[i]
		log.Debug("doctor check", "name", c.Name(), "status", res.Status, "detail", res.Detail, "took", took[i])
		records = append(records, CheckRecord{Name: c.Name(), Status: res.Status, Detail: res.Detail,
			DurationMS: ms(took[i])})
		findings = append(findings, res.Findings...)
	}
	return records, findings
}

// each runs fn(0) .. fn(n-1) concurrently and waits for them all.
func each(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Options configure Run. The zero value probes with probe.DefaultTimeout
// through the system resolver and reads this host's sockets and firewall.
type Options struct {
	// Timeout bounds name resolution (the first stage) and each probe;
	// the stages after resolution take at most about 1.15 times as long
	// together. Zero means probe.DefaultTimeout.
	Timeout time.Duration
	// Network is "tcp" (default), "tcp4" or "tcp6".
	Network string
	// Dial and Resolver are passed to the probes; nil uses the defaults.
	Dial     probe.DialFunc
	Resolver *net.Resolver
	// Source and Interface, when set, are where the TCP probes leave from
	// (probe.Options' fields of those names), and the route check asks
	// the route from that address and by that interface.
	Source    netip.Addr
	Interface string
	// Hold is how long the tcp check keeps one connection open after the
	// handshake, to catch a server that accepts and then resets or closes
	// it. It runs beside the later stages, so it lengthens only a check
	// that would end sooner (a healthy one: about a second instead of half
	// a second on loopback). Zero means DefaultHold; negative holds nothing.
	// Never longer than Timeout.
	Hold time.Duration
	// Enter runs fn where local evidence lives: sockets, routes, firewall
	// rules and ICMP are read inside it. Tests pass a network namespace's
	// Do; nil calls fn directly.
	Enter func(fn func() error) error
	// Sockets and Firewall read local evidence; nil uses the sockets
	// package and the nft / iptables-save commands.
	Sockets  SocketSource
	Firewall FirewallSource
	// Counters reads the kernel's network counters before and after the
	// probes; nil uses the kstat package.
	Counters CounterSource
	// Remote, when set, is asked for evidence when the target is another host.
	Remote RemoteEvidence
	// Probes is how many TCP probes tell a steady failure from an
	// intermittent one; zero means 3.
	Probes int
	// Vantage is set in a process RunFrom started inside another network
	// namespace, to what ChildVantage returned: reports name it. It
	// changes nothing else; the process already runs in the namespace.
	Vantage *Vantage
	// TLS and App are the layers above TCP to check on every address that
	// connects (the layers check): a TLS handshake, then the application's
	// answer. probe.Layers makes them from a URL. Nil: none.
	TLS *probe.TLSOptions
	App *app.Request
	// Name is how the report names the target (Report.Target, the
	// verdict): the URL a user gave; empty: host:port.
	Name string
	// WarnDays, when positive, has the layers check say when the
	// server's certificate expires within that many days.
	WarnDays int
	// Ladder replaces DefaultLadder.
	Ladder []Stage
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return probe.DefaultTimeout
}

func (o *Options) hold() time.Duration {
	switch {
	case o.Hold < 0:
		return 0
	case o.Hold == 0:
		return min(DefaultHold, o.timeout())
	}
	return min(o.Hold, o.timeout())
}

func (o *Options) enter(fn func() error) error {
	if o.Enter == nil {
		return fn()
	}
	return o.Enter(fn)
}

func (o *Options) socketSource() SocketSource {
	if o.Sockets != nil {
		return o.Sockets
	}
	return hostSockets{}
}

func (o *Options) firewallSource() FirewallSource {
	if o.Firewall != nil {
		return o.Firewall
	}
	return hostFirewall{}
}
