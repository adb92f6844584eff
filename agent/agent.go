package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/kstat"
	"github.com/reach-tools/reach/netwatch"
	"github.com/reach-tools/reach/probe"
	"golang.org/x/time/rate"
)

// Defaults for Config's zero fields.
const (
	DefaultBuffer       = 100_000
	DefaultReportEvery  = 2 * time.Second
	DefaultRefreshEvery = time.Minute
	DefaultConcurrency  = 32
	DefaultQueryRate    = 5 // evidence and metrics requests per second
)

// Floors of what a hub may ask for. A shorter interval or timeout in a
// probe list is raised to them, with a warning: whoever runs the hub must
// not be able to turn every agent into a flood (a hub that sent 1ms made
// one agent probe 45,000 times a second). They are the monitor's own limits
// for an endpoint's interval and timeout.
const (
	MinInterval = time.Second
	MinTimeout  = time.Millisecond
)

// Config configures an Agent. Name, Hub and Token are required; the zero
// value of every other field is a sensible default.
type Config struct {
	Name string // how the hub knows this host (its hosts: entry)
	Hub  string // base URL of the hub, e.g. "https://hub:9100"
	// Hubs are more URLs of the same hub (replicas sharing one PostgreSQL
	// store), tried after Hub in order: calls go to the first that accepts,
	// through a dial.Dialer, and results wait in the buffer until one has
	// them, so failing over loses none.
	Hubs  []string
	Token string // shared bearer token, for the hub and for queries to us
	// Advertise is the base URL where other hosts reach Handler (e.g.
	// "http://198.18.0.3:7070"); the hub hands it to reach check --hub and
	// asks it for the pair page. Its host must be this host's address in
	// the hub config (or one of Addrs). Empty: not advertised.
	Advertise string
	// Addrs are this host's addresses, first the one peers probe. With
	// them the agent registers (PathRegister): a hub whose config does not
	// list this host builds its probe list from Labels and its rules, and
	// the agent deregisters when Run ends. Empty: the hub config must list
	// this host by name.
	Addrs []netip.Addr
	// Labels describe this host to the hub's rules (role, zone, node...);
	// they are sent only with Addrs. See CheckLabels.
	Labels map[string]string

	// HTTPClient calls the hub; nil uses one with a 10 s timeout. Set its
	// Transport's TLSClientConfig (see ClientTLS) for https and mTLS.
	HTTPClient *http.Client
	// Dial makes probe connections; nil uses a net.Dialer.
	Dial probe.DialFunc
	// Gather reads this host's sockets and firewall for the evidence query;
	// nil uses doctor.Gather. Answers are narrowed to the port asked about.
	Gather func(ctx context.Context) doctor.HostEvidence
	// Counters reads the kernel's counters for PathCounters; nil reads
	// the agent's own namespace's (kstat.Read).
	Counters func() (kstat.Snapshot, error)

	Buffer       int           // results kept while the hub is unreachable
	ReportEvery  time.Duration // how often results are sent
	RefreshEvery time.Duration // how often the probe list is fetched again
	Concurrency  int           // probes in flight at once
	// QueryRate is the requests per second Handler serves to each caller
	// that holds the token (by client certificate name, else IP address);
	// requests without the token are refused before they count.
	QueryRate rate.Limit
	// AllowTargets lets the agent probe the addresses Forbidden names, when
	// one of these prefixes holds them; without, such targets from the hub
	// are refused, and reported as refused.
	AllowTargets []netip.Prefix
	// MinInterval is the shortest probe interval taken from the hub; a
	// shorter one is raised to it. 0 means MinInterval (1s). Only the
	// agent's own operator sets it (tests lower it); a hub cannot.
	MinInterval time.Duration
	// CompactMetrics exports one duration histogram for the whole agent
	// instead of one per target, and the latest duration per target as a
	// gauge: about 2 series per target instead of about 17, for fleets
	// whose full mesh would otherwise swamp Prometheus.
	CompactMetrics bool
	// NoNetWatch turns off re-probing on network changes: by default the
	// kernel's notices of route, address, link and nf_tables changes make
	// the agent probe the targets they may affect at once (ProbeList.Recheck
	// times, RecheckGap apart), report at once, and tell the hub the change.
	NoNetWatch bool
	// NetWatch tunes that watch (its Logger is the agent's).
	NetWatch netwatch.Options

	Logger *slog.Logger
}

// Agent probes what the hub tells it to and reports back. Build it with New.
type Agent struct {
	cfg   Config
	hub   *client
	buf   *buffer
	m     *metrics
	log   *slog.Logger
	limit *limiters
	run   int64 // Batch.Run: when New made this agent, in Unix nanoseconds

	mu         sync.Mutex
	kick       func(netwatch.Burst) []string // the running schedule's; nil between lists
	changes    []NetChange                   // to tell the hub, oldest first
	soon       chan struct{}                 // a re-probe is recorded: report it now
	registered bool                          // the hub took our Registration (or needs none)
	version    string                        // ProbeList.Version of the list in use
	relist     chan struct{}                 // the hub's list differs from ours: fetch it now
	// asked is the hub's last interval and timeout raised to the floors,
	// so that each such request is warned about once. Only Run's
	// goroutine touches it.
	asked [2]Duration
}

// New checks cfg and returns an agent ready to Run.
func New(cfg Config) (*Agent, error) {
	if cfg.Name == "" {
		return nil, errors.New("agent: no name: " +
			"give the agent the name the hub config knows this host by")
	}
	if !endpoint.ValidName(cfg.Name) {
		return nil, fmt.Errorf("agent: name %q: want 1-64 letters, digits, '.', '_' or '-', "+
			"starting with a letter or digit, as in the hub config", cfg.Name)
	}
	hub, err := hubClient(append([]string{cfg.Hub}, cfg.Hubs...), cfg.Token, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		neg  bool
		v    any
	}{
		{"Buffer", cfg.Buffer < 0, cfg.Buffer},
		{"ReportEvery", cfg.ReportEvery < 0, cfg.ReportEvery},
		{"RefreshEvery", cfg.RefreshEvery < 0, cfg.RefreshEvery},
		{"Concurrency", cfg.Concurrency < 0, cfg.Concurrency},
		{"QueryRate", cfg.QueryRate < 0, cfg.QueryRate},
		{"MinInterval", cfg.MinInterval < 0, cfg.MinInterval},
	} {
		if f.neg {
			return nil, fmt.Errorf("agent: %s %v is negative; give a positive value, "+
				"or 0 for the default", f.name, f.v)
		}
	}
	cfg.Buffer = cmp.Or(cfg.Buffer, DefaultBuffer)
	cfg.ReportEvery = cmp.Or(cfg.ReportEvery, DefaultReportEvery)
	cfg.RefreshEvery = cmp.Or(cfg.RefreshEvery, DefaultRefreshEvery)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.QueryRate = cmp.Or(cfg.QueryRate, DefaultQueryRate)
	cfg.MinInterval = cmp.Or(cfg.MinInterval, MinInterval)
	if len(cfg.Addrs) > 0 || len(cfg.Labels) > 0 {
		r := Registration{Name: cfg.Name, Addrs: cfg.Addrs, Labels: cfg.Labels, Advertise: cfg.Advertise,
			Run: 1}
		if err := r.Check(); err != nil {
			return nil, err
		}
	}
	if cfg.Counters == nil {
		cfg.Counters = kstat.Read
	}
	if cfg.Gather == nil {
		cfg.Gather = func(ctx context.Context) doctor.HostEvidence { return doctor.Gather(ctx, nil, nil) }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Agent{
		cfg:    cfg,
		hub:    hub,
		buf:    newBuffer(cfg.Buffer),
		m:      newMetrics(cfg.Name, cfg.CompactMetrics),
		log:    log.With("agent", cfg.Name),
		limit:  newLimiters(cfg.QueryRate),
		run:    time.Now().UnixNano(),
		soon:   make(chan struct{}, 1),
		relist: make(chan struct{}, 1),
	}, nil
}

// Run fetches the probe list, probes on schedule and reports until ctx is
// done, then sends what it still holds (briefly) and returns nil. It returns
// an error at once only when the hub refuses our token: retrying cannot fix
// that. Other hub failures are logged and retried; probing goes on with the
// last list and results wait in the buffer.
func (a *Agent) Run(ctx context.Context) error {
	list, err := a.firstList(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var wg sync.WaitGroup
	defer a.deregister(ctx) // after the last flush: the hub has every result first
	defer wg.Wait()
	wg.Go(func() { a.report(ctx) })
	if !a.cfg.NoNetWatch {
		wg.Go(func() { a.watchNet(ctx) })
	}
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { a.schedule(sctx, list); close(done) }()
		next := a.nextList(ctx, list)
		cancel()
		<-done
		for _, t := range list.Targets {
			if !slices.ContainsFunc(next.Targets, func(n Target) bool { return n.ID == t.ID }) {
				a.m.forget(t.ID)
			}
		}
		list = next
	}
	return nil
}

// fetch asks the hub for our probe list.
func (a *Agent) fetch(ctx context.Context) (ProbeList, error) {
	var pl ProbeList
	q := url.Values{"agent": {a.cfg.Name}}
	if a.cfg.Advertise != "" {
		q.Set("advertise", a.cfg.Advertise)
	}
	err := a.hub.call(ctx, http.MethodGet, PathTargets, q, nil, &pl)
	if err != nil {
		a.m.hubErrs.Inc()
		return pl, err
	}
	if pl.Interval <= 0 {
		return pl, fmt.Errorf("agent: the hub sent interval %v; want a positive one",
			time.Duration(pl.Interval))
	}
	if pl.Timeout <= 0 || pl.Timeout > pl.Interval {
		pl.Timeout = min(Duration(probe.DefaultTimeout), pl.Interval)
	}
	return a.floor(pl), nil
}

// floor raises an interval or timeout below the agent's floors to them, and
// warns once per value the hub asks for.
func (a *Agent) floor(pl ProbeList) ProbeList {
	asked := [2]Duration{pl.Interval, pl.Timeout}
	pl.Interval = max(pl.Interval, Duration(a.cfg.MinInterval))
	pl.Timeout = max(pl.Timeout, Duration(min(MinTimeout, a.cfg.MinInterval)))
	raised := asked != [2]Duration{pl.Interval, pl.Timeout}
	if raised && asked != a.asked {
		a.log.Warn("the hub asked for a shorter interval or timeout than this agent allows; "+
			"probing at the floor (fix agents.interval and agents.timeout in the hub's config)",
			"interval", time.Duration(asked[0]), "timeout", time.Duration(asked[1]),
			"floor_interval", a.cfg.MinInterval, "floor_timeout", MinTimeout,
			"using_interval", time.Duration(pl.Interval), "using_timeout", time.Duration(pl.Timeout))
	}
	a.asked = [2]Duration{}
	if raised {
		a.asked = asked
	}
	a.m.settings(time.Duration(pl.Interval), time.Duration(pl.Timeout), raised)
	return pl
}

// firstList retries fetch with backoff (1 s doubling to 30 s) until it
// works, ctx ends or the hub refuses our credentials.
func (a *Agent) firstList(ctx context.Context) (ProbeList, error) {
	wait := time.Second
	for {
		err := a.register(ctx)
		var pl ProbeList
		if err == nil {
			pl, err = a.fetch(ctx)
		}
		if errors.Is(err, ErrRegistration) {
			return pl, err // retrying sends the same
		}
		if err != nil && a.forgotten(err) {
			a.setRegistered(false) // announce ourselves again
		}
		if err == nil {
			a.log.Info("probe list", "targets", len(pl.Targets), "interval", time.Duration(pl.Interval))
			return pl, nil
		}
		if errors.Is(err, ErrUnauthorized) {
			return pl, fmt.Errorf("the hub refused this agent: %w "+
				"(check that agent and hub share the same token)", err)
		}
		a.log.Warn("cannot fetch probe list; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return pl, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// nextList fetches the list every RefreshEvery until it differs from cur or
// ctx ends. Failures keep cur.
func (a *Agent) nextList(ctx context.Context, cur ProbeList) ProbeList {
	a.mu.Lock()
	a.version = cur.Version
	a.mu.Unlock()
	t := time.NewTicker(a.cfg.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return cur
		case <-t.C:
		case <-a.relist: // a reply named another version: peers came or left
		}
		pl, err := a.fetch(ctx)
		if err != nil && a.forgotten(err) {
			// The hub lost our registration (its store was reset, or a
			// replica has not seen it): announce ourselves again.
			a.setRegistered(false)
			if err = a.register(ctx); err == nil {
				pl, err = a.fetch(ctx)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("cannot refresh probe list; keeping the last one", "err", err)
			}
			continue
		}
		if !sameList(pl, cur) {
			a.log.Info("probe list changed",
				"targets", len(pl.Targets), "interval", time.Duration(pl.Interval))
			return pl
		}
	}
}

func sameList(a, b ProbeList) bool {
	return a.Interval == b.Interval && a.Timeout == b.Timeout && slices.Equal(a.Targets, b.Targets)
}

// schedule probes every target once per interval until ctx ends. Targets
// are spread evenly over the interval, with a random phase so agents started
// together do not probe in step. A network change (kick) makes the targets
// it may affect be probed at once, pl.Recheck times RecheckGap apart.
func (a *Agent) schedule(ctx context.Context, pl ProbeList) {
	n := len(pl.Targets)
	if n == 0 {
		<-ctx.Done()
		return
	}
	refused := map[string]error{}
	var ids []string
	for _, t := range pl.Targets {
		if err := checkTarget(t.Addr, a.cfg.AllowTargets); err != nil {
			refused[t.ID] = err
			ids = append(ids, t.ID)
		}
	}
	a.m.refused.Set(float64(len(refused)))
	if len(refused) > 0 {
		a.log.Warn("refusing targets the hub sent: link-local, unspecified, broadcast or multicast "+
			"addresses; each is reported to the hub as refused (allow them with --allow-targets)",
			"targets", ids)
	}
	interval := time.Duration(pl.Interval)
	step := interval / time.Duration(n)
	phase := time.Duration(rand.Int64N(int64(step) + 1))
	sem := make(chan struct{}, a.cfg.Concurrency)
	opt := probe.Options{Timeout: time.Duration(pl.Timeout), Dial: a.cfg.Dial}
	rechecks := min(cmp.Or(pl.Recheck, DefaultRecheck), MaxRecheck)
	kicks := make([]chan struct{}, n)
	for i := range kicks {
		kicks[i] = make(chan struct{}, 1)
	}
	a.setKick(func(b netwatch.Burst) []string {
		var ids []string
		for i, t := range pl.Targets {
			if b.Affects(t.Addr.Addr()) {
				ids = append(ids, t.ID)
				select {
				case kicks[i] <- struct{}{}:
				default: // already kicked
				}
			}
		}
		return ids
	})
	defer a.setKick(nil)
	var wg sync.WaitGroup
	for i, t := range pl.Targets {
		wg.Go(func() {
			timer := time.NewTimer(phase + time.Duration(i)*step)
			defer timer.Stop()
			left := 0 // re-probes a change still asks for
			for {
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				case <-kicks[i]:
					left = rechecks
				}
				start := time.Now()
				recheck := left > 0
				if recheck {
					left--
				}
				if left > 0 {
					timer.Reset(RecheckGap)
				} else {
					timer.Reset(interval)
				}
				if err := refused[t.ID]; err != nil {
					// Checked before any socket: nothing is sent.
					a.record(t, probe.Result{Class: probe.LocalError, Err: err}, start)
					continue
				}
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				r := probe.Run(ctx, endpoint.FromAddrPort(t.Addr), opt)
				<-sem
				if ctx.Err() != nil {
					return // a probe cut short says nothing about the target
				}
				a.record(t, r, start)
				if recheck {
					a.reportSoon()
				}
			}
		})
	}
	wg.Wait()
}

func (a *Agent) setKick(f func(netwatch.Burst) []string) {
	a.mu.Lock()
	a.kick = f
	a.mu.Unlock()
}

func (a *Agent) reportSoon() {
	select {
	case a.soon <- struct{}{}:
	default:
	}
}

// watchNet re-probes on network changes until ctx ends, and keeps each
// change for the next batch. Where changes cannot be watched, it says so
// once: probing goes on by the interval.
func (a *Agent) watchNet(ctx context.Context) {
	opt := a.cfg.NetWatch
	opt.Logger = a.log
	err := netwatch.Watch(ctx, opt, func(b netwatch.Burst) {
		a.mu.Lock()
		defer a.mu.Unlock()
		c := NetChange{Time: b.First, Count: b.Count, Changes: b.Changes, Targets: []string{}}
		if a.kick != nil {
			c.Targets = a.kick(b)
		}
		if len(a.changes) == MaxChanges {
			a.changes = a.changes[1:]
		}
		a.changes = append(a.changes, c)
		a.log.Info("network change", "change", b.String(), "rechecking", len(c.Targets))
		a.reportSoon()
	})
	if err != nil {
		a.log.Warn("network changes will not trigger re-probes; targets are probed by their interval only",
			"err", err)
	}
}

func (a *Agent) record(t Target, r probe.Result, start time.Time) {
	src := a.cfg.Name
	if r.OK() {
		a.m.success.WithLabelValues(src, t.ID).Set(1)
		a.m.observeDuration(src, t.ID, r.RTT)
	} else {
		a.m.success.WithLabelValues(src, t.ID).Set(0)
		a.m.failures.WithLabelValues(src, t.ID, string(r.Class)).Inc()
	}
	if n := a.buf.push(resultOf(t, r, start)); n > 0 {
		a.m.dropped.Add(float64(n))
	}
	pending, _ := a.buf.stats()
	a.m.pending.Set(float64(pending))
}

// report sends buffered results every ReportEvery, and once more, briefly,
// when ctx ends.
func (a *Agent) report(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReportEvery)
	defer t.Stop()
	down := false
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			a.flush(fctx, false)
			cancel()
			return
		case <-t.C:
		case <-a.soon:
			// Re-probes come RecheckGap apart: one report for a few.
			select {
			case <-ctx.Done():
				continue
			case <-time.After(RecheckGap / 2):
			}
		}
		err := a.flush(ctx, a.registers())
		switch {
		case err != nil && !down && ctx.Err() == nil:
			pending, _ := a.buf.stats()
			msg := "hub unreachable; buffering results"
			if len(a.cfg.Hubs) > 0 {
				// One replica failed the call; the next report goes to
				// whichever replica accepts.
				msg = "a hub replica failed the call; buffering results, sent to the first of the " +
					strconv.Itoa(1+len(a.cfg.Hubs)) + " hubs that accepts next"
			}
			if errors.Is(err, ErrRateLimited) {
				msg = "the hub limits how much this agent sends; buffering results"
			}
			a.log.Warn(msg, "err", err, "pending", pending, "buffer", a.cfg.Buffer)
			down = true
		case err == nil && down:
			_, dropped := a.buf.stats()
			a.log.Info("hub reachable again", "dropped_total", dropped)
			down = false
		}
	}
}

// flush sends everything buffered, in batches, stopping at the first error.
// With beat, it sends a batch even when it has nothing to send: a
// registered agent with an empty probe list tells the hub so that it is
// alive (the hub takes a registered agent that stays silent for stale).
func (a *Agent) flush(ctx context.Context, beat bool) error {
	// Only what is buffered now: what comes meanwhile waits for the next
	// report. A hub replica answers once its store has the batch, a second
	// or more, while new results arrive: sending those too, flush never
	// returned, the agent posted without pause and never said the hub was
	// reachable again.
	stop := a.buf.next()
	for first := true; ; first = false {
		batch, seq := a.buf.peek(MaxBatch)
		if seq >= stop {
			batch = nil
		} else if n := stop - seq; uint64(len(batch)) > n {
			batch = batch[:n]
		}
		a.mu.Lock()
		changes := slices.Clone(a.changes)
		a.mu.Unlock()
		if len(batch) == 0 && len(changes) == 0 && !(beat && first) {
			return nil
		}
		end := seq + uint64(len(batch))
		_, dropped := a.buf.stats()
		b := Batch{Agent: a.cfg.Name, Results: batch, Dropped: dropped, Run: a.run, Seq: seq,
			Changes: changes}
		var reply IngestReply
		err := a.hub.call(ctx, http.MethodPost, PathResults, nil, b, &reply)
		if err != nil {
			a.m.hubErrs.Inc()
			return err
		}
		a.buf.ack(end)
		a.mu.Lock()
		if reply.List != "" && a.version != "" && reply.List != a.version {
			select {
			case a.relist <- struct{}{}:
			default:
			}
		}
		a.changes = slices.DeleteFunc(a.changes, func(c NetChange) bool { // keep what came since
			return slices.ContainsFunc(changes, func(s NetChange) bool { return s.Time.Equal(c.Time) })
		})
		a.mu.Unlock()
		a.m.sent.Add(float64(reply.Accepted))
		if reply.Rejected > 0 || reply.Truncated > 0 {
			// Resending cannot help: the hub judged them. Say why, once a batch.
			a.log.Warn("the hub refused results", "sent", len(batch), "accepted", reply.Accepted,
				"refused", reply.Refused, "error_text_cut", reply.Truncated)
		}
		pending, _ := a.buf.stats()
		a.m.pending.Set(float64(pending))
	}
}

// Handler serves what the agent exposes, and nothing more: /metrics, the
// evidence query and the kernel counters, all behind the token and the
// query rate limit.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, a.m.handler())
	mux.HandleFunc("GET "+PathEvidence, a.serveEvidence)
	mux.HandleFunc("GET "+PathCounters, a.serveCounters)
	return guard(func() string { return a.cfg.Token }, a.limit, mux)
}

func (a *Agent) serveEvidence(w http.ResponseWriter, r *http.Request) {
	dst, err := netip.ParseAddrPort(r.URL.Query().Get("addr"))
	if err != nil || dst.Port() == 0 {
		http.Error(w, "addr: want the IP:port you dialled, e.g. 198.18.0.2:5432", http.StatusBadRequest)
		return
	}
	// Firewall rules are judged for the asker, or for src when a hub asks
	// on behalf of another agent.
	src, _ := netip.ParseAddrPort(r.RemoteAddr)
	if q := r.URL.Query().Get("src"); q != "" {
		a, err := netip.ParseAddr(q)
		if err != nil {
			http.Error(w, "src: want an IP address", http.StatusBadRequest)
			return
		}
		src = netip.AddrPortFrom(a, 0)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	ev := a.cfg.Gather(ctx)
	ev.Host = a.cfg.Name
	writeJSON(w, ev.Narrow(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), dst))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// registers reports whether this agent announces itself to the hub.
func (a *Agent) registers() bool { return len(a.cfg.Addrs) > 0 }

func (a *Agent) setRegistered(v bool) {
	a.mu.Lock()
	a.registered = v
	a.mu.Unlock()
}

// register announces this agent to the hub, once per run unless the hub
// forgets it. A hub that refuses what we announce (400, 409) is an error
// wrapping ErrRegistration: sending it again cannot help. A hub that
// predates registration (404 or 405 on the path) is warned about once, and
// the agent goes on as one its config must list.
func (a *Agent) register(ctx context.Context) error {
	a.mu.Lock()
	done := a.registered || !a.registers()
	a.mu.Unlock()
	if done {
		return nil
	}
	r := Registration{Name: a.cfg.Name, Addrs: a.cfg.Addrs, Labels: a.cfg.Labels,
		Advertise: a.cfg.Advertise, Run: a.run}
	var reply RegisterReply
	err := a.hub.call(ctx, http.MethodPost, PathRegister, nil, r, &reply)
	var ce *CallError
	switch {
	case err == nil:
		a.log.Info("registered with the hub", "addrs", a.cfg.Addrs, "labels", a.cfg.Labels,
			"targets", reply.Targets)
	case errors.As(err, &ce) && (ce.Status == http.StatusNotFound || ce.Status == http.StatusMethodNotAllowed):
		a.log.Warn("the hub does not take registrations (it predates them): it must list this "+
			"agent by name in agents.hosts", "err", err)
	case errors.As(err, &ce) && (ce.Status == http.StatusBadRequest || ce.Status == http.StatusConflict):
		a.m.hubErrs.Inc()
		return fmt.Errorf("%w: the hub refused what this agent announces: %w "+
			"(fix --name, --addr, --label or --labels-file)", ErrRegistration, err)
	default:
		a.m.hubErrs.Inc()
		return err
	}
	a.setRegistered(true)
	return nil
}

// forgotten reports whether err is the hub saying it does not know us,
// while we register: it lost our registration.
func (a *Agent) forgotten(err error) bool {
	var ce *CallError
	return a.registers() && errors.As(err, &ce) && ce.Status == http.StatusNotFound
}

// deregister tells the hub this agent leaves, so that it is not taken for
// one that vanished; bounded, as the process is stopping.
func (a *Agent) deregister(ctx context.Context) {
	a.mu.Lock()
	reg := a.registered && a.registers()
	a.mu.Unlock()
	if !reg {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	q := url.Values{"agent": {a.cfg.Name}, "run": {strconv.FormatInt(a.run, 10)}}
	if err := a.hub.call(dctx, http.MethodDelete, PathRegister, q, nil, nil); err != nil {
		a.log.Warn("could not deregister; the hub will take this agent for one that vanished",
			"err", err)
		return
	}
	a.setRegistered(false)
	a.log.Info("deregistered from the hub")
}
