package hub

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/internal/httpsafe"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/netwatch"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/web"
)

// WatchOptions configure a Watch. The zero value watches with the doctor,
// without history or metrics, and serves an open dashboard.
type WatchOptions struct {
	// Monitor configures the monitor: Store, Metrics, Concurrency, Retain
	// and the rest are used as given. Its Diagnoser and Notifier are the
	// Watch's: the doctor (see NoDoctor) and the config's webhook.
	Monitor monitor.Options
	// NoDoctor leaves endpoints that go down undiagnosed.
	NoDoctor bool
	// DoctorTimeout bounds each probe of the doctor; zero is the doctor's
	// default.
	DoctorTimeout time.Duration
	// AgentClient calls agents for the pair page and for diagnoses of pairs
	// seen from agents; nil uses one with a 3 s timeout. Set its TLS config
	// for https agents.
	AgentClient *http.Client
	// Dashboard configures the dashboard: its auth and Gatherer are used as
	// given; its Monitor and Logger are the Watch's.
	Dashboard web.Options
	// Server bounds the HTTP server (timeouts, bodies, connection caps,
	// TLS). Unless it says otherwise, bodies may be as large as an agent's
	// batch (agent.MaxBody), and the caps leave the probes in flight
	// (Monitor.Concurrency) and the store, doctor and alerts 64 file
	// descriptors, so no number of clients can make an endpoint look down.
	Server httpsafe.Options
	// Logger receives the monitor's, the webhook's and the hub's logs; nil
	// discards them.
	Logger *slog.Logger
	// HubMetrics, when set, count what the hub refuses from agents.
	HubMetrics *Metrics
	// NoNetWatch turns off re-probing on network changes: by default the
	// kernel's notices of route, address, link and nf_tables changes
	// (package netwatch) make the endpoints they may affect be re-probed
	// at once, and are recorded (Monitor.NetChanges, /api/changes).
	NoNetWatch bool
	// NetWatch tunes that watch (its Logger is the Watch's).
	NetWatch netwatch.Options
	// DashboardURL is the dashboard as people reach it, for links in
	// alerts, unless the config's alerts.dashboard_url says otherwise.
	DashboardURL string
}

// Watch is reach watch as a library: a monitor of a reach.yaml's endpoints
// with its dashboard and alerts, and, when the file has an agents: section,
// the hub of its agents, whose results the monitor stores like its own
// probes (source = the agent) and whose matrix joins the dashboard at
// /agents/. Build it with NewWatch, start it with Run.
type Watch struct {
	// Monitor probes the endpoints and keeps every state and its history.
	Monitor *monitor.Monitor
	// Hub serves the agents; nil without an agents: section.
	Hub *Hub
	// Alerting decides which state changes are announced (dependencies,
	// maintenance windows, reminders, flapping) and tells the webhook and
	// Alertmanager.
	Alerting *monitor.Alerting

	hook    *monitor.Webhook
	am      *monitor.Alertmanager
	dash    string
	handler http.Handler
	server  httpsafe.Options
	net     *netwatch.Options // nil: no re-probing on network changes
	replica *monitor.Replica  // nil: this process runs alone
	log     *slog.Logger
}

// NewWatch builds the monitor, the hub and the dashboard for cfg, restoring
// state from opt.Monitor.Store (ctx bounds that). Pairs seen from agents that
// the store holds but cfg no longer gives any agent are forgotten.
func NewWatch(ctx context.Context, cfg *monitor.Config, opt WatchOptions) (*Watch, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc, err := FromMonitorConfig(cfg)
	if err != nil {
		return nil, err
	}
	w := &Watch{hook: &monitor.Webhook{URL: cfg.Alerts.Webhook, Logger: log}, server: opt.Server,
		log: log, am: &monitor.Alertmanager{Logger: log}, dash: opt.DashboardURL}
	w.am.SetConfig(cfg.Alerts, w.dash)
	w.Alerting = monitor.NewAlerting(cfg, nil, w.hook, w.am)
	w.am.Active = w.Alerting.Active
	if st := opt.Monitor.Store; st != nil {
		// The API's windows live in the store: across restarts, and for
		// every replica (the one sending alerts reads them at each decision).
		if err := w.Alerting.UseStore(ctx, st, log); err != nil {
			return nil, err
		}
	}
	if w.server.MaxBody == 0 {
		w.server.MaxBody = agent.MaxBody
	}
	if w.server.Reserve == 0 {
		w.server.Reserve = cmp.Or(opt.Monitor.Concurrency, monitor.DefaultConcurrency) +
			httpsafe.DefaultReserve
	}
	if w.server.Logger == nil {
		w.server.Logger = log
	}
	if !opt.NoNetWatch {
		no := opt.NetWatch
		no.Logger = log
		w.net = &no
	}
	if hc != nil {
		if w.Hub, err = New(*hc); err != nil {
			return nil, err
		}
		w.Hub.Logger, w.Hub.AgentClient, w.Hub.Metrics = log, opt.AgentClient, opt.HubMetrics
		w.Hub.HistoryLink = func(source, target string) string {
			return "/api/endpoints/" + url.PathEscape(source) + "/" + url.PathEscape(target)
		}
		w.Hub.Causes = func(source, target string) string {
			if w.Monitor == nil {
				return ""
			}
			st, err := w.Monitor.Status(source, target)
			if err != nil || st.State != monitor.StateDown {
				return ""
			}
			return st.Cause
		}
		w.Hub.Notifier = w.Alerting // an agent gone stale holds the alerts of its host's pairs
		if opt.Monitor.Store != nil {
			w.Hub.Registry = opt.Monitor.Store
			if err := w.Hub.Restore(ctx); err != nil {
				return nil, err
			}
		}
	}
	mo := opt.Monitor
	mo.Logger, mo.Notifier, mo.Diagnoser = log, w.Alerting, nil
	if !opt.NoDoctor {
		mo.Diagnoser = doctorDiagnoser(opt.DoctorTimeout, log)
		if w.Hub != nil {
			mo.Diagnoser = sourceDiagnoser{Diagnoser: mo.Diagnoser, hub: w.Hub}
		}
	}
	if w.Monitor, err = monitor.New(ctx, cfg, mo); err != nil {
		return nil, err
	}
	forgetRemovedPairs(w.Monitor, w.Hub)
	if w.Hub != nil {
		w.Hub.ListsChanged = func() { forgetRemovedPairs(w.Monitor, w.Hub) }
	}
	// What was down before a restart was announced then. Replicas: the
	// holder of the alerts' lease runs the Alerter, seeded as it takes it.
	if r := opt.Monitor.Replica; r != nil {
		w.replica = r
		if w.Hub != nil {
			// The pairs whose agents report to another replica.
			w.Hub.Shared = func(source, target string) (probe.Class, time.Time, time.Duration, bool) {
				st, err := w.Monitor.Status(source, target)
				if err != nil || st.Last.Time.IsZero() {
					return "", time.Time{}, 0, false
				}
				return st.Last.Class, st.Last.Time, st.Last.RTT, true
			}
		}
		w.Alerting.Lease(func() bool { return r.Holds(monitor.JobAlerts) }, w.Monitor.Statuses)
		w.am.Holds = w.Alerting.Holding
	} else {
		w.Alerting.Seed(w.Monitor.Statuses())
	}
	dash := opt.Dashboard
	dash.Monitor, dash.Logger, dash.Alerting = w.Monitor, log, w.Alerting
	w.handler = withHub(w.Hub, web.New(dash))
	if w.Hub != nil {
		w.Hub.Sink = MonitorSink{Monitor: w.Monitor}
	}
	return w, nil
}

// Handler serves the dashboard (page, API, /metrics) and, with a hub, the
// agent protocol beside it (behind the agents' token) and the matrix pages
// inside it (behind the dashboard's auth).
func (w *Watch) Handler() http.Handler { return w.handler }

// withHub mounts the hub's protocol and pages on the dashboard.
func withHub(hub *Hub, dash *web.Server) http.Handler {
	if hub == nil {
		return dash
	}
	dash.Handle("GET /agents/", hub.Pages())
	mux := http.NewServeMux()
	mux.Handle("/agent/v1/", hub.Handler())
	mux.Handle("/", dash)
	return mux
}

// Run probes, alerts and serves Handler on ln (a plain listener: TLS is
// WatchOptions.Server's) until ctx ends; then it writes the last batch of
// history and sends the alerts still queued.
func (w *Watch) Run(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Monitor.Run(ctx) })
	g.Go(func() error { w.hook.Run(ctx); return nil })
	g.Go(func() error { w.Alerting.Run(ctx); return nil })
	g.Go(func() error { w.am.Run(ctx); return nil })
	g.Go(func() error { return httpsafe.Serve(ctx, ln, w.handler, w.server) })
	if w.net != nil {
		g.Go(func() error { w.watchNet(ctx); return nil })
	}
	if w.Hub != nil {
		g.Go(func() error { w.sweep(ctx); return nil })
	}
	return g.Wait()
}

// sweep judges the registered agents every second (Hub.Sweep) until ctx
// ends.
func (w *Watch) sweep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if r := w.replica; r != nil {
				// Every replica learns of every replica's calls (its
				// matrix says when each agent last called, and whether
				// its pairs are stale); one looks for stale agents.
				seen, err := w.Monitor.Store().AgentsSeen(ctx)
				if err != nil {
					if r.Holds(monitor.JobAgents) {
						w.log.Warn("read when agents last called the replicas", "err", err)
					}
					continue
				}
				for name, at := range seen {
					w.Hub.NoteSeen(name, at)
				}
				if !r.Holds(monitor.JobAgents) {
					continue
				}
			}
			w.Hub.Sweep(now)
		}
	}
}

// watchNet re-probes on network changes until ctx ends. Where changes
// cannot be watched (not Linux), it says so once: probing goes on by the
// interval.
func (w *Watch) watchNet(ctx context.Context) {
	err := netwatch.Watch(ctx, *w.net, func(b netwatch.Burst) { w.Monitor.NetChanged(b) })
	if err != nil {
		w.log.Warn("network changes will not trigger re-probes; endpoints are probed by their interval only",
			"err", err)
	}
}

// Reload applies a new configuration without losing state: the monitor's
// endpoints and alerts, the webhook's URL and the agents: section, whose
// removed pairs leave the dashboard and /metrics. An agents: section the hub
// refuses (or one removed or added: stopping or starting the hub takes a
// restart) is the error, and the hub keeps its running configuration; the
// rest is applied anyway.
func (w *Watch) Reload(cfg *monitor.Config) error {
	w.Monitor.Reload(cfg)
	w.hook.SetURL(cfg.Alerts.Webhook)
	w.Alerting.SetConfig(cfg)
	w.am.SetConfig(cfg.Alerts, w.dash)
	if w.Hub == nil {
		// Said, not ignored: the agents would be refused while the log
		// said the configuration was reloaded.
		if hc, err := FromMonitorConfig(cfg); err == nil && hc != nil {
			return errors.New("an agents: section was added; restart reach watch to start the hub " +
				"(the rest of the configuration is applied)")
		}
		return nil
	}
	hc, err := FromMonitorConfig(cfg)
	if err == nil && hc == nil {
		err = errors.New("the agents: section was removed; restart reach watch to stop the hub")
	}
	if err == nil {
		err = w.Hub.SetConfig(*hc)
	}
	if err != nil {
		return err
	}
	forgetRemovedPairs(w.Monitor, w.Hub)
	return nil
}

// forgetRemovedPairs drops from the monitor the pairs seen from agents
// that the hub (nil: no agents: section) no longer gives any agent: states
// restored from the store, or kept across a reload or an agent's leaving,
// would stay "down" and keep reach_endpoint_up at 0 for a pair nobody
// probes.
func forgetRemovedPairs(m *monitor.Monitor, h *Hub) {
	lists := map[string]agent.ProbeList{}
	if h != nil {
		lists = h.Lists()
	}
	m.ForgetSources(func(source, name string) bool {
		return slices.ContainsFunc(lists[source].Targets,
			func(t agent.Target) bool { return t.ID == name })
	})
}
