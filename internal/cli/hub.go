package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/monitor"
)

// This file holds reach watch's flags and output for the agents' hub (when
// reach.yaml has an agents: section); package hub does the work.

// printHub lists a valid agents: section for --check-config.
func printHub(env *Env, cfg *monitor.Config) {
	hc, err := hub.FromMonitorConfig(cfg)
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

// config returns the TLS configuration the flags ask for; nil for none.
func (f *hubTLSFlags) config() (*tls.Config, error) {
	if f.cert == "" && f.key == "" && f.clientCA == "" {
		return nil, nil
	}
	return agent.ServerTLS(f.cert, f.key, f.clientCA)
}

// listenOn opens what --listen asks for (what names the server, e.g.
// "dashboard"). A malformed address is a usage error; a failure to listen
// says what usually causes it.
func listenOn(what, addr string) (net.Listener, error) {
	if err := checkListen(addr); err != nil {
		return nil, usageErrorf("--listen %q: %v", addr, err)
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
	return nil, &ExitError{Code: ExitFail,
		Err: fmt.Errorf("%s cannot listen on %s: %w (%s)", what, addr, err, hint)}
}

// checkListen refuses a malformed listen address: it wants host:port, the
// host empty (every address), an IP address or a host name, the port a
// number from 0 (any free one) to 65535.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%v; want host:port, e.g. 127.0.0.1:9190", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q: want a number from 0 to 65535 (0 picks a free one)", port)
	}
	if host == "" {
		return nil
	}
	if _, err := endpoint.ParseEndpoint(net.JoinHostPort(host, "1"), 0); err != nil {
		return fmt.Errorf("host %q: want an IP address or a host name of this host "+
			"(empty for every address)", host)
	}
	return nil
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
			log.Warn("the hub listens on loopback only: agents on other hosts cannot reach it; "+
				"use --listen 0.0.0.0:9190 (with REACH_WATCH_TOKEN) or an address of this host",
				"listen", addr.String(), "agent", a.Name, "addr", a.Addr.String())
			return
		}
	}
}
