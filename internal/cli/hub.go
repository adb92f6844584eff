package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/web"
)

// This file makes reach watch the agents' hub when reach.yaml has an
// agents: section: agent results are stored like the monitor's own probes
// (source = the agent), and the matrix joins the dashboard at /agents/.

// hubConfig checks reach.yaml's agents: section; nil when there is none.
func hubConfig(cfg *monitor.Config) (*agent.HubConfig, error) {
	if cfg.Agents == nil {
		return nil, nil
	}
	hc, err := agent.ParseHubConfig(cfg.Agents)
	if err != nil {
		return nil, err
	}
	return &hc, nil
}

// printHub lists a valid agents: section for --check-config.
func printHub(env *Env, cfg *monitor.Config) {
	hc, err := hubConfig(cfg)
	if hc == nil || err != nil {
		return
	}
	lists, _ := hc.ProbeLists()
	n := 0
	for _, pl := range lists {
		n += len(pl.Targets)
	}
	fmt.Fprintf(env.Out, "agents: %s, %s", plural(len(hc.Hosts), "host"), plural(n, "probe"))
	for _, pl := range lists {
		fmt.Fprintf(env.Out, " every %v, timeout %v", time.Duration(pl.Interval), time.Duration(pl.Timeout))
		break
	}
	fmt.Fprintln(env.Out)
	for _, h := range hc.Hosts {
		var ids []string
		for _, t := range lists[h.Name].Targets {
			ids = append(ids, t.ID)
		}
		probes := strings.Join(ids, " ")
		if probes == "" {
			probes = "nothing (in no group or pair)"
		}
		fmt.Fprintf(env.Out, "  %-16s %-16s probes %s\n", h.Name, h.Addr, probes)
	}
}

// newHub builds the hub for cfg's agents: section (nil when absent); set
// its Sink once the monitor exists. agents, when not nil, calls https agents.
func newHub(cfg *monitor.Config, log *slog.Logger, agents *http.Client) (*agent.Hub, error) {
	hc, err := hubConfig(cfg)
	if hc == nil || err != nil {
		return nil, err
	}
	if hc.TokenFile == "" {
		return nil, errors.New("agents: no token_file: agents and hub share a bearer token; create one (openssl rand -hex 32 > /etc/reach/agent-token) and set agents.token_file to it")
	}
	hub, err := agent.NewHub(*hc)
	if err != nil {
		return nil, err
	}
	hub.Logger, hub.AgentClient = log, agents
	hub.HistoryLink = func(source, target string) string {
		return "/api/endpoints/" + url.PathEscape(source) + "/" + url.PathEscape(target)
	}
	return hub, nil
}

// hubDiagnoser explains pairs seen from agents by asking the target host's
// agent (the doctor's findings from that side); the monitor's own endpoints
// go to the doctor here as before.
type hubDiagnoser struct {
	monitor.Diagnoser
	hub *agent.Hub
}

func (d hubDiagnoser) DiagnoseFrom(ctx context.Context, source string, ep monitor.Endpoint, class probe.Class) (monitor.Diagnosis, error) {
	ap, _ := ep.Target.AddrPort()
	host, detail, findings, _, err := d.hub.Explain(ctx, source, ep.Name, ap, class)
	if errors.Is(err, agent.ErrNoAgent) {
		return monitor.Diagnosis{Cause: string(doctor.Unknown), Verdict: fmt.Sprintf("seen from %s: %s; no agent on %s to ask", source, class, cmp.Or(host, ap.Addr().String()))}, nil
	}
	if err != nil {
		return monitor.Diagnosis{}, err
	}
	d2 := monitor.Diagnosis{Cause: string(doctor.Unknown), Verdict: fmt.Sprintf("seen from %s: %s; on %s: %s", source, class, host, detail)}
	for _, f := range findings {
		if d2.Cause == string(doctor.Unknown) {
			d2.Cause = string(f.Cause)
		}
		d2.Findings = append(d2.Findings, monitor.Finding{Cause: string(f.Cause), Confidence: string(f.Confidence), Issue: f.Issue, Evidence: f.Evidence, Fix: f.Fix})
	}
	return d2, nil
}

// reloadHub applies a reloaded agents: section; a bad one keeps the old.
// The pairs it removed leave the dashboard and /metrics.
func reloadHub(hub *agent.Hub, m *monitor.Monitor, cfg *monitor.Config, log *slog.Logger) {
	if hub == nil {
		return
	}
	hc, err := hubConfig(cfg)
	if err == nil && hc == nil {
		err = errors.New("the agents: section was removed; restart reach watch to stop the hub")
	}
	if err == nil {
		err = hub.SetConfig(*hc)
	}
	if err != nil {
		log.Error("agents: reload refused; the running hub configuration stays", "err", err)
		return
	}
	forgetRemovedPairs(m, hc)
}

// forgetRemovedPairs drops from the monitor the pairs seen from agents
// that hc (nil: no agents: section) no longer holds: states restored from
// the store, or kept across a reload, would stay "down" and keep
// reach_endpoint_up at 0 for a pair nobody probes.
func forgetRemovedPairs(m *monitor.Monitor, hc *agent.HubConfig) {
	lists := map[string]agent.ProbeList{}
	if hc != nil {
		var err error
		if lists, err = hc.ProbeLists(); err != nil {
			return // the hub refused it too
		}
	}
	m.ForgetSources(func(source, name string) bool {
		return slices.ContainsFunc(lists[source].Targets, func(t agent.Target) bool { return t.ID == name })
	})
}

// withHub serves the agent protocol (behind the agents' token) beside the
// dashboard, and the matrix pages inside it (behind the dashboard's auth).
func withHub(hub *agent.Hub, dash *web.Server) http.Handler {
	if hub == nil {
		return dash
	}
	dash.Handle("GET /agents/", hub.Pages())
	mux := http.NewServeMux()
	mux.Handle("/agent/v1/", hub.Handler())
	mux.Handle("/", dash)
	return mux
}

// hubTLSFlags serve reach watch (dashboard and hub) over https, and with
// --tls-client-ca require client certificates (mTLS): agents then act only
// under the name their certificate carries, and browsers need one too.
type hubTLSFlags struct{ cert, key, clientCA string }

func (f *hubTLSFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cert, "tls-cert", "", "serve https with this PEM certificate")
	fl.StringVar(&f.key, "tls-key", "", "key of --tls-cert")
	fl.StringVar(&f.clientCA, "tls-client-ca", "", "require client certificates signed by this CA (mTLS, for agents and browsers alike)")
}

// agentTLSFlags are the hub's TLS client settings for its calls to https
// agents (the pair page and the diagnosis of pairs seen from agents).
type agentTLSFlags struct{ ca, cert, key string }

func (f *agentTLSFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.ca, "agent-ca", "", "trust this CA for https agents' certificates (hub only)")
	fl.StringVar(&f.cert, "agent-cert", "", "client certificate for agents that require one (mTLS)")
	fl.StringVar(&f.key, "agent-key", "", "key of --agent-cert")
}

// client returns the hub's client for agents; nil when no flag is set.
func (f *agentTLSFlags) client() (*http.Client, error) {
	return httpsClient(f.ca, f.cert, f.key, 3*time.Second)
}

// wrap returns ln serving TLS when the flags ask for it.
func (f *hubTLSFlags) wrap(ln net.Listener) (net.Listener, error) {
	if f.cert == "" && f.key == "" && f.clientCA == "" {
		return ln, nil
	}
	cfg, err := agent.ServerTLS(f.cert, f.key, f.clientCA)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, cfg), nil
}

// listenOn opens what --listen asks for (what names the server, e.g.
// "dashboard"). A malformed address is a usage error; a failure to listen
// says what usually causes it.
func listenOn(what, addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usageErrorf("--listen %q: %v; want host:port, e.g. 127.0.0.1:9190", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	hint := "pick another --listen"
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = `another process holds it: see "reach ports --port", or pick another --listen`
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = "no interface of this host has that address (see ip addr); use one it has, or 0.0.0.0"
	case errors.Is(err, syscall.EACCES):
		hint = "ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a port above 1023"
	}
	return nil, &ExitError{Code: ExitFail, Err: fmt.Errorf("%s cannot listen on %s: %w (%s)", what, addr, err, hint)}
}

// warnHubOnLoopback says so when the hub listens on loopback (the default)
// while agents on other hosts would need to reach it.
func warnHubOnLoopback(log *slog.Logger, addr net.Addr, agents []agent.AgentInfo) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return
	}
	for _, a := range agents {
		if !a.Addr.IsLoopback() {
			log.Warn("the hub listens on loopback only: agents on other hosts cannot reach it; use --listen 0.0.0.0:9190 (with REACH_WATCH_TOKEN) or an address of this host",
				"listen", addr.String(), "agent", a.Name, "addr", a.Addr.String())
			return
		}
	}
}
