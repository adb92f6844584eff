package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/internal/httpsafe"
	"github.com/reach-tools/reach/internal/version"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/web"
)

func init() { register("watch", newWatchCmd) }

func newWatchCmd(env *Env) *cobra.Command {
	var (
		config, store, listen, retain, basic, token string
		writeToken                                  string
		checkOnly, noDoctor, noNetWatch, replica    bool
		replicaInterval                             time.Duration
		configPoll                                  time.Duration
		tlsFlags                                    hubTLSFlags
		agentTLS                                    agentTLSFlags
		concurrency                                 int
		doctorTimeout, streamLife, storeGrace       time.Duration
		server                                      httpFlags
		logs                                        logFlags
	)
	cmd := &cobra.Command{
		Use:   "watch -c reach.yaml",
		Short: "Monitor endpoints continuously: history, metrics, a dashboard, alerts, and why each went down",
		Long: `watch probes every endpoint of reach.yaml on its interval and keeps its state
(up or down after rise/fall consecutive results). Each time an endpoint goes
down, the doctor diagnoses it and its findings (issue, evidence, fix) are kept
with the state change, shown on the dashboard and sent with the alert.

It serves, on --listen (loopback by default):
  /          the dashboard: state, since when, latency over the last hour/day,
             uptime, and the doctor's findings for a down endpoint (live)
  /api/...   the JSON the dashboard reads
  /metrics   Prometheus metrics: reach_probe_success, reach_probe_duration_seconds,
             reach_probe_failures_total{class,cause}, reach_state_transitions_total,
             reach_store_healthy
  /healthz   ok, or 503 once every write to the store has failed for --store-grace
             (the store's error shows to those the dashboard lets in)

History goes to a SQLite file (--store reach.db), or to PostgreSQL with
--store postgres://...; samples are written in batches once a second, so a
crash loses at most the last second of samples. Samples older than 2 hours
are averaged into 5-minute buckets, buckets older than 2 days into hourly
ones, and everything is dropped after --retain.

With --replica, several reach watch processes share one PostgreSQL store as
replicas of one hub (start each with the same reach.yaml and --store): any of
them takes agents' reports (give agents every replica's URL: --hub A,B) and
serves the dashboard from the shared store; the endpoints of reach.yaml are
split between the live replicas, each probed by one; sending alerts,
compacting history and finding stale agents are each done by one replica
at a time, and taken over within two --replica-interval when it dies.
Each result and state change is stored once, and each alert sent once.
SQLite is one process's store.

The configuration is reloaded when its file changes (checked every
--config-poll, 5s: a Kubernetes ConfigMap mounted without subPath updates in
place) and on SIGHUP; endpoints keep their state. A bad file is refused and
the running configuration stays.

With an agents: section, watch is also the hub of "reach agent"s (see
deploy/README.md): --tls-cert/--tls-key/--tls-client-ca serve it over https
(mTLS), and --agent-ca/--agent-cert/--agent-key are what it uses to call
agents that serve https.

Set REACH_WATCH_TOKEN or REACH_WATCH_BASIC_AUTH=user:password to protect
the dashboard (the flags work too, but show in ps).

The server bounds its clients: a request must arrive within --read-timeout
(headers within 5s), a response within --write-timeout, an idle kept-alive
connection closes after --idle-timeout, and a live-update stream ends after
--stream-lifetime (the page reconnects). Bodies above 8 MiB are refused
(413). Open connections are capped (--max-conns, --max-conns-per-client):
by default from the file limit (ulimit -n), leaving --concurrency + 64
descriptors for the probes, the store and the doctor, so that no number of
clients can make an endpoint look down; connections beyond the caps are
closed at once, counted in reach_http_connections_refused_total and logged.`,
		Example: `  reach watch -c reach.yaml                       # dashboard on http://127.0.0.1:9190/
  reach watch -c reach.yaml --check-config        # validate, print the endpoints, exit
  reach watch -c reach.yaml --store postgres://reach@127.0.0.1/reach --retain 90d
  REACH_WATCH_TOKEN=$(head -c 32 /dev/urandom | base64) reach watch -c reach.yaml --listen 0.0.0.0:9190
  kill -HUP $(pidof reach)                        # reload reach.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ret, err := parseRetention(retain)
			if err != nil {
				return usageErrorf("--retain: %v", err)
			}
			switch {
			case concurrency < 1:
				return usageErrorf("--concurrency %d: give at least 1 probe in flight (default %d)",
					concurrency, monitor.DefaultConcurrency)
			case doctorTimeout <= 0:
				return usageErrorf("--doctor-timeout %v: give a positive duration such as 3s", doctorTimeout)
			}
			switch {
			case replicaInterval <= 0:
				return usageErrorf("--replica-interval %v: give a positive duration such as 5s", replicaInterval)
			case cmd.Flags().Changed("replica-interval") && !replica:
				return usageErrorf("--replica-interval is for replicas: add --replica (and a postgres:// --store)")
			}
			if configPoll < 0 {
				return usageErrorf("--config-poll %v: give a duration such as 5s, or 0 to reload on SIGHUP only", configPoll)
			}
			if err := mustBePositive(durationFlag{"stream-lifetime", streamLife},
				durationFlag{"store-grace", storeGrace}); err != nil {
				return err
			}
			srvOpt, err := server.options()
			if err != nil {
				return err
			}
			log, err := logs.logger(env.Err)
			if err != nil {
				return err
			}
			if err := checkListen(listen); err != nil {
				return usageErrorf("--listen %q: %v", listen, err)
			}
			if token == "" {
				token = os.Getenv("REACH_WATCH_TOKEN")
			}
			if token != "" {
				if err := agent.CheckToken("--token or REACH_WATCH_TOKEN", token); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if writeToken == "" {
				writeToken = os.Getenv("REACH_WATCH_WRITE_TOKEN")
			}
			if writeToken != "" {
				if err := agent.CheckToken("--write-token or REACH_WATCH_WRITE_TOKEN", writeToken); err != nil {
					return usageErrorf("%v", err)
				}
				if writeToken == token {
					return usageErrorf("the write token is the dashboard's token: give it a token of its own, " +
						"so that who may read cannot also silence alerts")
				}
			}
			if basic == "" {
				basic = os.Getenv("REACH_WATCH_BASIC_AUTH")
			}
			user, pass, _ := strings.Cut(basic, ":")
			if basic != "" && (user == "" || pass == "") {
				return usageErrorf("--basic-auth wants user:password")
			}
			cfg, err := monitor.LoadConfig(config)
			if err != nil {
				var ce monitor.ConfigErrors
				if errors.As(err, &ce) {
					fmt.Fprintf(env.Err, "reach: %s is not valid:\n%v\n"+
						"Fix the lines above; see examples/reach.yaml for every field.\n", config, err)
					return &ExitError{Code: ExitFail}
				}
				return &ExitError{Code: ExitFail, Err: fmt.Errorf("%w (pass the file with -c)", err)}
			}
			agents, err := agentTLS.client()
			if err != nil {
				return err
			}
			// Check the agents: section now: that also reads its token file.
			hc, err := hub.FromMonitorConfig(cfg)
			if err != nil {
				fmt.Fprintf(env.Err, "reach: %s is not valid:\n%v\n"+
					"Fix the agents: section; see deploy/README.md.\n", config, err)
				return &ExitError{Code: ExitFail}
			}
			if hc != nil {
				for _, w := range hc.Warnings() {
					fmt.Fprintf(env.Err, "reach: warning: %s\n", w)
				}
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintf(env.Err, "reach: warning: %s\n", w)
			}
			if checkOnly {
				err := printConfig(env, config, cfg)
				printHub(env, cfg)
				return err
			}
			w := watcher{env: env, cfg: cfg, path: config, store: store, listen: listen, retain: ret,
				tls: tlsFlags, agents: agents, concurrency: concurrency, noDoctor: noDoctor,
				noNetWatch: noNetWatch, log: log, jsonLogs: logs.format == "json",
				replica: replica, replicaInterval: replicaInterval, configPoll: configPoll,
				doctorTimeout: doctorTimeout, storeGrace: storeGrace, server: srvOpt,
				auth: web.Options{Token: token, User: user, Password: pass, StreamLifetime: streamLife,
					WriteToken: writeToken}}
			return w.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&config, "config", "c", "reach.yaml", "configuration file")
	f.BoolVar(&checkOnly, "check-config", false, "validate the configuration and exit (0 valid, 1 not)")
	f.StringVar(&store, "store", "reach.db", "history: a SQLite file, or a postgres:// DSN")
	f.StringVar(&retain, "retain", "30d", "keep history this long (e.g. 90d, 12h)")
	f.BoolVar(&replica, "replica", false, "share the --store (PostgreSQL) with other reach watch --replica "+
		"processes: one fleet, endpoints split between them, alerts and compaction by one at a time")
	f.DurationVar(&replicaInterval, "replica-interval", monitor.DefaultReplicaInterval,
		"replicas: one silent this long is dead to the others, who take over its endpoints "+
			"and jobs (each says it lives four times an interval)")
	f.DurationVar(&configPoll, "config-poll", 5*time.Second, "reload the configuration when its file "+
		"changes, checked this often (a Kubernetes ConfigMap update, an edit); 0: on SIGHUP only")
	f.StringVar(&listen, "listen", "127.0.0.1:9190", "address of the dashboard, API and /metrics")
	tlsFlags.add(cmd)
	agentTLS.add(cmd)
	f.StringVar(&token, "token", "", "require this bearer token (or ?token=) on the dashboard")
	f.StringVar(&writeToken, "write-token", "", "accept maintenance windows (POST/DELETE /api/maintenance) "+
		"with this bearer token (or REACH_WATCH_WRITE_TOKEN)")
	f.StringVar(&basic, "basic-auth", "", "require HTTP basic auth user:password on the dashboard")
	f.IntVar(&concurrency, "concurrency", monitor.DefaultConcurrency, "probes in flight at most")
	f.BoolVar(&noDoctor, "no-doctor", false, "do not diagnose endpoints that go down")
	f.BoolVar(&noNetWatch, "no-net-watch", false, "do not re-probe at once when the kernel announces a "+
		"route, address, link or nf_tables change (the changes are listed at /api/changes)")
	f.DurationVar(&doctorTimeout, "doctor-timeout", 3*time.Second, "timeout of each probe the doctor makes")
	f.DurationVar(&storeGrace, "store-grace", monitor.DefaultStoreGrace,
		"how long every write to the store may fail before /healthz answers 503 and reach_store_healthy is 0")
	server.add(cmd)
	logs.add(f, "info")
	f.DurationVar(&streamLife, "stream-lifetime", web.DefaultStreamLifetime,
		"HTTP: longest life of one live-update stream of the dashboard (the page reconnects)")
	return cmd
}

// parseRetention accepts Go durations and whole days ("30d").
func parseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > 3650 {
			return 0, fmt.Errorf("%q: want whole days from 1d to 3650d, or a duration such as 12h", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want e.g. 30d or 12h", s)
		}
	}
	if d < time.Hour {
		return 0, fmt.Errorf("%q: keep at least 1h (m is minutes; write days as e.g. 30d)", s)
	}
	if d > 3650*24*time.Hour {
		return 0, fmt.Errorf("%q: keep at most 3650d", s)
	}
	return d, nil
}

func printConfig(env *Env, path string, cfg *monitor.Config) error {
	fmt.Fprintf(env.Out, "%s: valid, %s\n", path, plural(len(cfg.Endpoints), "endpoint"))
	for _, ep := range cfg.Endpoints {
		extra := ""
		if ep.Expect == monitor.ExpectClosed {
			extra = " expect closed"
		}
		if ep.LatencyThreshold > 0 {
			extra += " slower than " + ep.LatencyThreshold.String() + " fails"
		}
		if ep.Source.IsValid() {
			extra += " from " + ep.Source.String()
		}
		if ep.Interface != "" {
			extra += " by " + ep.Interface
		}
		fmt.Fprintf(env.Out, "  %-24s %-28s every %v, timeout %v%s\n",
			ep.Name, ep.Target, ep.Interval, ep.Timeout, extra)
	}
	hook := "no webhook"
	if cfg.Alerts.Webhook != "" {
		hook = "webhook " + monitor.RedactWebhook(cfg.Alerts.Webhook) // as the logs show it
	}
	fmt.Fprintf(env.Out, "alerts: %s, down after %d failures, up after %d successes\n",
		hook, cfg.Alerts.Fall, cfg.Alerts.Rise)
	a := cfg.Alerts
	if a.Alertmanager != "" {
		fmt.Fprintf(env.Out, "  alertmanager %s, firing alerts posted again every %v\n",
			monitor.RedactWebhook(a.Alertmanager), a.ResendEvery)
	}
	if a.GroupWait > 0 {
		fmt.Fprintf(env.Out, "  a down alert waits %v for those of its dependencies\n", a.GroupWait)
	}
	if a.RemindEvery > 0 {
		fmt.Fprintf(env.Out, "  still down: reminded every %v\n", a.RemindEvery)
	}
	if a.FlapChanges > 0 {
		fmt.Fprintf(env.Out, "  flapping: more than %d changes in %v\n", a.FlapChanges, a.FlapWindow)
	}
	for _, ep := range cfg.Endpoints {
		if len(ep.DependsOn) > 0 {
			fmt.Fprintf(env.Out, "  %s depends on %s\n", ep.Name, strings.Join(ep.DependsOn, ", "))
		}
	}
	for _, w := range a.Maintenance {
		fmt.Fprintf(env.Out, "  maintenance %s: %s\n", w.ID, w)
	}
	return nil
}

type watcher struct {
	env                   *Env
	cfg                   *monitor.Config
	path, store, listen   string
	tls                   hubTLSFlags
	agents                *http.Client // calls https agents; nil: the hub's default
	retain, doctorTimeout time.Duration
	storeGrace            time.Duration
	concurrency           int
	noDoctor              bool
	noNetWatch            bool
	replica               bool
	replicaInterval       time.Duration
	configPoll            time.Duration // 0: reload on SIGHUP only
	auth                  web.Options
	server                httpsafe.Options
	log                   *slog.Logger // from --log-level and --log-format
	jsonLogs              bool         // --log-format json: the start lines are records too
}

func (w *watcher) run(ctx context.Context) error {
	env := w.env
	log := w.log
	// Listen first: a bad --listen or TLS flag fails before the store is
	// created. Serve closes ln; closing it again on the way out is harmless.
	ln, err := listenOn("dashboard", w.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	scheme := "http"
	if w.server.TLSConfig, err = w.tls.config(); err != nil {
		return &ExitError{Code: ExitFail, Err: err}
	} else if w.server.TLSConfig != nil {
		scheme = "https"
	}
	open := monitor.OpenExclusive
	if w.replica {
		open = monitor.OpenReplica
	}
	store, err := open(ctx, w.store, log)
	if errors.Is(err, monitor.ErrInUse) || errors.Is(err, monitor.ErrReplicaStore) {
		return &ExitError{Code: ExitFail, Err: err}
	} else if err != nil {
		return &ExitError{Code: ExitFail, Err: fmt.Errorf("%w\nCheck --store: a writable SQLite file path, "+
			"or a reachable postgres:// DSN", err)}
	}
	defer store.Close()
	var replica *monitor.Replica
	if w.replica {
		replica, err = monitor.Join(ctx, store, monitor.ReplicaOptions{Interval: w.replicaInterval, Logger: log})
		if err != nil {
			return &ExitError{Code: ExitFail, Err: err}
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), version.Collector())
	dash := w.auth
	dash.Gatherer = reg
	w.server.Registerer = reg
	wt, err := hub.NewWatch(ctx, w.cfg, hub.WatchOptions{
		Monitor: monitor.Options{Store: store, Metrics: monitor.NewMetrics(reg),
			Concurrency: w.concurrency, Retain: w.retain, StoreGrace: w.storeGrace, Replica: replica},
		NoDoctor: w.noDoctor, NoNetWatch: w.noNetWatch, DoctorTimeout: w.doctorTimeout, AgentClient: w.agents,
		Dashboard: dash, Server: w.server, Logger: log, HubMetrics: hub.NewMetrics(reg),
		DashboardURL: scheme + "://" + ln.Addr().String() + "/"})
	if err != nil {
		return &ExitError{Code: ExitFail, Err: err}
	}
	noAuth := w.auth.Token == "" && w.auth.User == "" && w.tls.clientCA == ""
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() && noAuth {
		log.Warn("the dashboard has no auth and listens beyond loopback: anyone who reaches it "+
			"sees every endpoint, and on a hub what agents see of their hosts' sockets and firewalls; "+
			"set REACH_WATCH_TOKEN or REACH_WATCH_BASIC_AUTH, or --tls-client-ca",
			"listen", ln.Addr().String())
	}
	// Catch SIGHUP before saying we run, so no early one kills the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	dashURL := fmt.Sprintf("%s://%s/", scheme, ln.Addr())
	if w.jsonLogs {
		// A log pipeline gets the start as a record like any other line.
		log.Info("watch serving", "endpoints", len(w.cfg.Endpoints), "store", monitor.Redact(w.store),
			"dialect", store.Dialect(), "dashboard", dashURL)
	} else {
		fmt.Fprintf(env.Err, "reach watch: %s, history in %s (%s), dashboard %s\n",
			plural(len(w.cfg.Endpoints), "endpoint"), monitor.Redact(w.store), store.Dialect(), dashURL)
	}
	if replica != nil {
		fmt.Fprintf(env.Err, "reach watch: replica %s, %d live; one silent for %v is taken over\n",
			replica.ID(), len(replica.Live()), replica.Interval())
	}
	if wt.Hub != nil {
		if w.jsonLogs {
			log.Info("hub serving", "agents", len(wt.Hub.Agents()), "matrix", dashURL+"agents/")
		} else {
			fmt.Fprintf(env.Err, "reach watch: hub for %s at %s://%s, matrix %[2]s://%[3]s/agents/\n",
				plural(len(wt.Hub.Agents()), "agent"), scheme, ln.Addr())
		}
		warnHubOnLoopback(log, ln.Addr(), wt.Hub.Agents())
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, runCtx := errgroup.WithContext(runCtx)
	g.Go(func() error { return wt.Run(runCtx, ln) })
	g.Go(func() error { w.reloadOnHUP(runCtx, hup, wt, log); return nil })
	if w.configPoll > 0 {
		g.Go(func() error {
			pollFile(runCtx, w.path, w.configPoll, func() {
				log.Info("configuration file changed; reloading", "config", w.path)
				select {
				case hup <- syscall.SIGHUP: // as if sent: one reload path
				default: // a reload is pending already
				}
			})
			return nil
		})
	}
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return &ExitError{Code: ExitFail, Err: err}
	}
	return nil
}

// reloadOnHUP re-reads the configuration on SIGHUP.
func (w *watcher) reloadOnHUP(ctx context.Context, hup <-chan os.Signal, wt *hub.Watch,
	log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := monitor.LoadConfig(w.path)
		if err != nil {
			log.Error("reload refused; the running configuration stays", "config", w.path, "err", err)
			continue
		}
		if err := wt.Reload(cfg); err != nil {
			log.Error("agents: reload refused; the running hub configuration stays", "err", err)
		}
		log.Info("configuration reloaded", "config", w.path, "endpoints", len(cfg.Endpoints))
	}
}
