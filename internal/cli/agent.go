package cli

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/spf13/cobra"
)

func init() { register("agent", newAgentCmd) }

// tokenFlags reads the shared token from --token-file or REACH_TOKEN; a
// token on the command line would show in ps.
type tokenFlags struct{ file string }

func (f *tokenFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "token-file", "", "file holding the shared bearer token (default: $REACH_TOKEN)")
}

func (f *tokenFlags) token() (string, error) {
	if f.file != "" {
		tok, err := agent.ReadToken(f.file)
		if err != nil {
			return "", usageErrorf("--token-file: %v", err)
		}
		return tok, nil
	}
	if tok := os.Getenv("REACH_TOKEN"); tok != "" {
		if err := agent.CheckToken("REACH_TOKEN", tok); err != nil {
			return "", usageErrorf("%v", err)
		}
		return tok, nil
	}
	return "", usageErrorf("%v", agent.ErrNoToken)
}

// remoteFlags let reach check ask the agent on the target host for its
// sockets and firewall rules.
type remoteFlags struct {
	agentURL, hubURL string
	tok              tokenFlags
	ca, cert, key    string
}

func (f *remoteFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.agentURL, "agent", "", "ask the reach agent on the target host (its URL) what it sees: names the exact cause")
	fl.StringVar(&f.hubURL, "hub", "", "find the target host's agent through this hub")
	f.tok.add(cmd)
	fl.StringVar(&f.ca, "agent-ca", "", "trust this CA for the agent's and hub's https certificates")
	fl.StringVar(&f.cert, "agent-cert", "", "client certificate for agents and hub that require one (mTLS)")
	fl.StringVar(&f.key, "agent-key", "", "key of --agent-cert")
}

// remote returns the evidence source the flags ask for, nil for none.
func (f *remoteFlags) remote() (doctor.RemoteEvidence, error) {
	if f.agentURL == "" && f.hubURL == "" {
		return nil, nil
	}
	if f.agentURL != "" && f.hubURL != "" {
		return nil, usageErrorf("give --agent or --hub, not both")
	}
	token, err := f.tok.token()
	if err != nil {
		return nil, err
	}
	hc, err := httpsClient(f.ca, f.cert, f.key, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var r doctor.RemoteEvidence
	if f.agentURL != "" {
		r, err = agent.NewClient(f.agentURL, token, hc)
	} else {
		r, err = agent.NewDiscovery(f.hubURL, token, hc)
	}
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return r, nil
}

// httpsClient returns a client that trusts ca (the system roots when empty)
// and presents cert/key; nil when all three are empty, for the default one.
func httpsClient(ca, cert, key string, timeout time.Duration) (*http.Client, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	tc, err := agent.ClientTLS(ca, cert, key)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}, nil
}

// advertised derives the agent's URL from --listen when that is one
// routable address with a port (not 0.0.0.0, not loopback, not port 0).
func advertised(listen string, https bool) string {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil || ap.Port() == 0 || ap.Addr().Unmap().IsUnspecified() || ap.Addr().Unmap().IsLoopback() {
		return ""
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	return scheme + "://" + netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// announce reads what the agent tells the hub of itself: --addr (else the
// address of the advertised URL), and labels from --labels-file and
// --label, the flags winning.
func announce(addrs, labels []string, file, advertise string) ([]netip.Addr, map[string]string, error) {
	var out []netip.Addr
	for _, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, nil, usageErrorf("--addr %q: want an IP address such as 198.18.0.3", s)
		}
		out = append(out, a.Unmap())
	}
	if len(out) == 0 && advertise != "" {
		if u, err := url.Parse(advertise); err == nil {
			if a, err := netip.ParseAddr(u.Hostname()); err == nil {
				out = append(out, a.Unmap())
			}
		}
	}
	l := map[string]string{}
	if file != "" {
		var err error
		if l, err = agent.ReadLabels(file); err != nil {
			return nil, nil, usageErrorf("--labels-file: %v", err)
		}
	}
	for _, kv := range labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, nil, usageErrorf("--label %q: want key=value, e.g. role=db", kv)
		}
		l[k] = v
	}
	if err := agent.CheckLabels(l); err != nil {
		return nil, nil, usageErrorf("--label: %v", err)
	}
	if len(l) > 0 && len(out) == 0 {
		return nil, nil, usageErrorf("labels need an address to register with: give --addr " +
			"(in Kubernetes, --addr=$(POD_IP) from the Downward API)")
	}
	if len(l) == 0 {
		l = nil
	}
	return out, l, nil
}

// parseAllowTargets reads --allow-targets: CIDRs, or addresses (one each).
func parseAllowTargets(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, usageErrorf("--allow-targets %q: want CIDRs or addresses, comma-separated, "+
					"e.g. 169.254.169.254/32,fe80::/10", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func newAgentCmd(env *Env) *cobra.Command {
	var (
		cfg                        agent.Config
		tok                        tokenFlags
		listen                     string
		tlsCert, tlsKey, clientCA  string
		hubCA, hubCert, hubCertKey string
		server                     httpFlags
		allowTargets               []string
		hubs                       []string
		logs                       logFlags
		addrs, labels              []string
		labelsFile                 string
	)
	cmd := &cobra.Command{
		Use:   "agent --hub URL",
		Short: "Probe this host's peers for the hub, export metrics, answer the doctor's questions",
		Long: `Run on every server of a fleet. The agent fetches its probe list from the hub
(reach watch with an agents: section), probes those targets on schedule and
reports the results in batches. While the hub is unreachable it keeps probing
and buffers results (bounded: the oldest are dropped and counted).

With --addr (or an --advertise address) the agent registers: it tells the
hub its name, addresses and labels (--label, --labels-file), and a hub whose
config does not list it builds its probe list, and its peers', from the
matrix rules of its config. On SIGTERM it deregisters; an agent that
vanishes turns stale at the hub, which alerts after a grace.

It also serves, on --listen and only with the shared token:
  /metrics             Prometheus metrics labelled source and target
  /agent/v1/evidence   "what do you see for port P?": listening sockets on P
                       with their processes, and matching firewall rules,
                       so "reach check" elsewhere can name the exact cause.
Nothing else is exposed. Requests without the token are refused before
they count against any budget; each caller with the token (by client
certificate, else IP address) may ask 5 times a second.

The server bounds its clients as reach watch's does: --read-timeout,
--write-timeout, --idle-timeout, request bodies of at most 64 KiB, and open
connections capped (--max-conns, --max-conns-per-client; by default from
the file limit, leaving 96 descriptors for the probes and the evidence).

Whoever controls the hub controls what agents connect to, so an agent
refuses link-local (169.254.0.0/16, where cloud metadata services answer;
fe80::/10), unspecified (0.0.0.0, ::), broadcast and multicast targets, and
reports each to the hub as refused (class local-error) without sending
anything; --allow-targets lets it probe those you name. It also probes no
target more often than once a second, whatever interval the hub sends.

The token comes from --token-file or $REACH_TOKEN (never the command line,
where ps would show it). Use TLS for anything but a trusted network:
--tls-cert/--tls-key serve https, --tls-client-ca requires client
certificates; --hub-ca/--cert/--key do the same towards the hub, where a
client certificate must name this agent (CN or DNS SAN).`,
		Example: `  # on every server the hub config lists by name (agents.hosts)
  REACH_TOKEN=$(cat /etc/reach/token) reach agent --hub http://hub.internal:9190 \
      --name web-1 --listen 198.18.0.1:7070

  # hub replicas (reach watch --replica on one PostgreSQL): fail over between them
  reach agent --hub http://hub-1:9190,http://hub-2:9190 --name web-1
  # a server the hub config does not list: it registers, and the hub's
  # agents.matrix.rules make its probe list from its labels
  REACH_TOKEN=$(cat /etc/reach/token) reach agent --hub http://hub.internal:9190 \
      --name db-7 --addr 198.18.0.7 --label role=db --label zone=z-1 --listen 198.18.0.7:7070

  # with TLS both ways
  reach agent --hub https://hub:9190 --hub-ca ca.pem --cert web-1.pem --key web-1-key.pem \
      --token-file /etc/reach/token --listen :7070 \
      --tls-cert web-1.pem --tls-key web-1-key.pem --tls-client-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Logger, err = logs.logger(env.Err); err != nil {
				return err
			}
			hubs = agent.SplitHubs(hubs)
			if len(hubs) == 0 {
				return usageErrorf("--hub is required: the URL of the hub (reach watch with an agents: section)")
			}
			cfg.Hub, cfg.Hubs = hubs[0], hubs[1:]
			if cfg.AllowTargets, err = parseAllowTargets(allowTargets); err != nil {
				return err
			}
			token, err := tok.token()
			if err != nil {
				return err
			}
			cfg.Token = token
			if cfg.Name == "" {
				if cfg.Name, err = os.Hostname(); err != nil {
					return usageErrorf("--name not given and the host name is unknown: %v", err)
				}
			}
			if cfg.HTTPClient, err = httpsClient(hubCA, hubCert, hubCertKey, 10*time.Second); err != nil {
				return err
			}
			srvOpt, err := server.options()
			if err != nil {
				return err
			}
			if tlsCert != "" || tlsKey != "" || clientCA != "" {
				if srvOpt.TLSConfig, err = agent.ServerTLS(tlsCert, tlsKey, clientCA); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if err := checkListen(listen); err != nil {
				return usageErrorf("--listen %q: %v", listen, err)
			}
			if cfg.Advertise == "" {
				cfg.Advertise = advertised(listen, srvOpt.TLSConfig != nil)
			}
			if cfg.Addrs, cfg.Labels, err = announce(addrs, labels, labelsFile, cfg.Advertise); err != nil {
				return err
			}
			a, err := agent.New(cfg)
			if err != nil {
				return usageErrorf("%v", err)
			}
			ln, err := listenOn("agent", listen)
			if err != nil {
				return err
			}
			if cfg.Advertise == "" {
				if host, _, _ := net.SplitHostPort(listen); host == "" || net.ParseIP(host).IsUnspecified() {
					cfg.Logger.Warn("no --advertise: the hub cannot tell reach check --hub or the matrix where this agent is; add --advertise http://THIS-HOST-IP:PORT (its addr in the hub config)", "listen", listen)
				}
			}
			cfg.Logger.Info("agent serving", "listen", ln.Addr().String(), "advertise", cfg.Advertise, "hub", hubs, "name", cfg.Name)
			// The agent runs until the hub refuses it or ctx ends; the server
			// until ctx ends or it fails. Either ends both.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			serveErr := make(chan error, 1)
			go func() { serveErr <- a.Serve(ctx, ln, srvOpt) }()
			runErr := make(chan error, 1)
			go func() { runErr <- a.Run(ctx) }()
			select {
			case err = <-runErr:
				cancel()
				<-serveErr
			case err = <-serveErr:
				cancel()
				<-runErr
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return &ExitError{Code: ExitFail, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&hubs, "hub", nil, "base URL of the hub (required), e.g. http://hub:9190; "+
		"repeat it or give a comma list for hub replicas on one PostgreSQL store: the first that "+
		"accepts gets the results, and buffered results go to the next when one fails")
	f.StringVar(&cfg.Name, "name", "", "this host's name in the hub config (default: the host name)")
	f.StringVar(&cfg.Advertise, "advertise", "", "URL where other hosts reach this agent, told to the hub (default: from --listen when it is one address)")
	f.StringVar(&listen, "listen", "127.0.0.1:7070", "address for /metrics and the evidence query; 0.0.0.0:7070 to let other hosts ask")
	tok.add(cmd)
	f.DurationVar(&cfg.ReportEvery, "report-every", agent.DefaultReportEvery, "how often to send results to the hub")
	f.DurationVar(&cfg.RefreshEvery, "refresh-every", agent.DefaultRefreshEvery, "how often to fetch the probe list again")
	f.IntVar(&cfg.Buffer, "buffer", agent.DefaultBuffer, "results kept while the hub is unreachable (then the oldest are dropped)")
	f.BoolVar(&cfg.NoNetWatch, "no-net-watch", false, "do not re-probe at once when the kernel announces "+
		"a route, address, link or nf_tables change that may affect a target (nor tell the hub)")
	f.BoolVar(&cfg.CompactMetrics, "compact-metrics", false, "one duration histogram for the agent instead of one per target, plus the last duration per target as a gauge (about 2 series per target instead of 17; for large meshes)")
	f.StringArrayVar(&addrs, "addr", nil, "this host's address, told to the hub when registering: "+
		"a hub whose config does not list this host builds its probe list from the labels "+
		"(repeat for several; the first is probed; default: the --advertise address)")
	f.StringArrayVar(&labels, "label", nil, "a label k=v told to the hub's matrix rules "+
		"(repeat; e.g. --label role=db --label zone=$(ZONE))")
	f.StringVar(&labelsFile, "labels-file", "", "labels in the Kubernetes Downward API's format, "+
		"one key=\"value\" a line (--label wins)")
	f.StringSliceVar(&allowTargets, "allow-targets", nil, "probe these link-local, unspecified, broadcast or multicast targets when the hub asks (CIDRs or addresses, comma-separated); other such targets are refused")
	f.StringVar(&tlsCert, "tls-cert", "", "serve https with this PEM certificate")
	f.StringVar(&tlsKey, "tls-key", "", "key of --tls-cert")
	f.StringVar(&clientCA, "tls-client-ca", "", "require client certificates signed by this CA (mTLS)")
	f.StringVar(&hubCA, "hub-ca", "", "trust this CA for the hub's https certificate")
	f.StringVar(&hubCert, "cert", "", "client certificate to present to the hub (mTLS)")
	f.StringVar(&hubCertKey, "key", "", "key of --cert")
	server.add(cmd)
	logs.add(f, "info")
	return cmd
}
