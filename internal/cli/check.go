package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
)

func init() { register("check", newCheckCmd) }

func newCheckCmd(env *Env) *cobra.Command {
	var (
		timeout  time.Duration
		hold     time.Duration
		asJSON   bool
		network  string
		remote   remoteFlags
		netns    string
		pid      int
		local    localFlags
		layerOpt layerFlags
	)
	cmd := &cobra.Command{
		Use:   "check TARGET...",
		Short: "Diagnose why a host:port (or a URL: https://, grpc:// ...) cannot be reached: issue, evidence and fix",
		Long: `check walks the ladder a person walks by hand when a connection fails — name
resolution, route, TCP probes, ping, the listening sockets and firewall rules
of this host, the path — and ends with a table of issue / evidence / fix and a
stable cause id:

  not-listening, wrong-port, loopback-only, address-family-mismatch,
  firewall-drop, firewall-reject, host-down, no-route, dns, overloaded,
  server-hung, reset-by-peer, closed-by-peer, local-error, conntrack-full,
  not-published, nat-mismatch, nat-target-gone, no-endpoints,
  published-on-loopback, proxy-backend-down, reachable

` + layerHelp + `
The layers check runs them on every address that connects; --json gains
addresses[].tls (version, alpn, server_name, verified, not_after, ...) and
addresses[].app (protocol, ready, state, first_byte_ns, http.status ...).

On a Docker host or a Kubernetes node, check follows the connection through
the nat rules as the kernel would (Docker's DNAT, kube-proxy's iptables and
nftables modes, REDIRECT) and through userland proxies (docker-proxy), and
looks where it ends: which container's network namespace has the address and
what listens there. "Where the connection goes" (paths in --json) shows
that path, also when the target is reachable. A server in a container bound
to its own 127.0.0.1 is loopback-only; a container listening on the port
with no rule leading there is not-published; a DNAT to a port the container
does not listen on is nat-mismatch; to an address no namespace has any more
(a removed container) nat-target-gone.

The kernel's counters, read before and after the probes, confirm a full
accept queue with the SYNs it dropped, report SYN cookies, show a full
conntrack table (conntrack-full) and, when connect fails with EADDRNOTAVAIL,
count the ephemeral ports held towards the address (a local-error).

Sockets, processes and firewall rules can be seen only on the target host:
run check there for a confirmed cause, or let check ask the reach agent there
(--agent URL, or --hub URL to find it; token from --token-file or
$REACH_TOKEN). With --hub, the agent of each address's host is asked, all at
once: a name whose addresses live on several hosts gets each host's view,
and an agent that fails (unreachable, token refused, rate limited) costs only
its own address. Without either, from another host, check says what the
client saw, lists the possible causes most likely first, and what would tell
them apart. Reading firewall rules and other users' processes needs root.

--json prints one line per target, each a JSON object (schema
reach.check/v1): target, reachable, class, cause, confidence (confirmed, likely
or possible), verdict, addresses[] (each probed with its class, and
evidence: who answered for it, or the agent's failure and its fix),
findings[] (cause, issue, evidence, fix, and addr when the name has several
addresses) and checks[] (name, status, detail, duration_ms). A name
reachable on some addresses only is reachable, and its cause names what is
wrong with the others.

--netns NAME|PATH and --pid PID run the whole ladder from inside another
network namespace of this host: an ip netns name, a namespace file such as
/proc/PID/ns/net or /run/docker/netns/ID, or that of process PID (a
container's: docker inspect -f '{{.State.Pid}}' NAME). For "it works from the
host but not from my container": the probes, routes, ping, path, the
listening sockets, firewall rules and kernel counters are all the
container's. reach starts itself again inside the namespace to do it, and
gives that process the namespace's own /etc/resolv.conf and /etc/hosts when
it has them (a container's, or /etc/netns/NAME's as ip netns exec does);
otherwise lookups use this host's, and the report says which. The report
names the namespace ("vantage" in --json). --agent and --hub are asked from
inside it too. Entering a namespace needs root (CAP_SYS_ADMIN); or run reach
under ip netns exec / nsenter -t PID -n.

--source ADDR and --interface NAME make the probes leave from that address
of this host, by that interface, whatever the routes prefer (with --source,
a name is checked on its addresses of that family).

A connection that opens is held for --hold (1s) while the other checks run,
to catch a server that accepts and then resets or closes it (a proxy whose
backend is down, a server over its connection limit): a healthy check takes
about that long. --hold 0 skips it for the fastest answer.

Exit status: 0 every target is reachable, 1 one is not, 2 usage error.`,
		Example: `  reach check 127.0.0.1:7707              # a server on this host
  reach check db.internal:5432 --timeout 5s
  reach check [fd00::2]:443 web:80        # several targets
  reach check api:8080 --json | jq -r .cause
  reach check db:5432 --agent http://db:7070 --token-file /etc/reach/token   # ask db's agent
  reach check api:8080 --hub http://hub:9190   # ask the agent on each of api's hosts
  reach check db:5432 --pid 4242          # from the container of process 4242
  reach check 198.18.0.2:80 --netns blue  # from the namespace ip netns calls blue
  reach check 198.18.0.2:80 --source 198.18.1.1   # the probes leave from that address
  reach check https://127.0.0.1:8443/healthz --ca ca.pem --warn-days 30
  reach check https://api:443/ --expect-status 200 --expect-body '"ok"'
  reach check tls://db:5432 --sni db.internal --cert me.pem --key me-key.pem
  reach check grpc://127.0.0.1:50051/orders.Orders   # grpc.health.v1 Check of one service`,
		Args: minArgs("check"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usageErrorf("--timeout must be positive, got %v", timeout)
			}
			if hold < 0 {
				return usageErrorf("--hold must be 0 (no hold) or more, got %v", hold)
			}
			switch network {
			case "tcp", "tcp4", "tcp6":
			default:
				return usageErrorf("--network must be tcp, tcp4 or tcp6, got %q", network)
			}
			targets, err := endpoint.ParseTargets(args)
			if err != nil {
				return &UsageError{Err: err}
			}
			if err := layerOpt.check(targets); err != nil {
				return err
			}
			eps := make([]endpoint.Endpoint, len(targets))
			layered := make([]doctor.Layered, len(targets))
			for i, t := range targets {
				eps[i] = t.Endpoint
				layered[i].Endpoint = t.Endpoint
				if t.Scheme != "tcp" {
					layered[i].Name = t.String() // the URL, layer and all
				}
				if layered[i].TLS, layered[i].App, err = layerOpt.layers(t); err != nil {
					return err
				}
			}
			for _, ep := range eps {
				// --network picks among a name's addresses; an address
				// literal of the other family would be checked regardless.
				a, ok := ep.Addr()
				if !ok || network == "tcp" || (network == "tcp4") == a.Is4() {
					continue
				}
				fam := "IPv6"
				if a.Is4() {
					fam = "IPv4"
				}
				return usageErrorf("--network %s, but %s is an %s address; drop --network or give a name", network, ep, fam)
			}
			opt := doctor.Options{Timeout: timeout, Network: network, Hold: hold, WarnDays: layerOpt.warnDays}
			if hold == 0 {
				opt.Hold = -1 // the library's zero is its default
			}
			if opt.Remote, err = remote.remote(); err != nil {
				return err
			}
			if opt.Vantage, err = doctor.ChildVantage(); err != nil {
				return &ExitError{Code: ExitFail, Err: err}
			}
			ref, inside, err := vantageRef(cmd, netns, pid)
			if err != nil {
				return err
			}
			// From inside another namespace, the reach started there
			// checks the address and interface: they are its own.
			source, iface, err := local.parse(network, !inside)
			if err != nil {
				return err
			}
			if err := sameFamily(source, eps); err != nil {
				return err
			}
			opt.Source, opt.Interface = source, iface
			if source.IsValid() && network == "tcp" {
				// A name is checked on the addresses the source can reach.
				opt.Network = map[bool]string{true: "tcp4", false: "tcp6"}[source.Is4()]
			}
			enc := json.NewEncoder(env.Out) // JSON Lines: one report a line, one target or many
			// Every target is checked at once (doctor.RunMany); reports
			// come out in the order given, each as soon as those before it
			// are, with a progress line for the one awaited.
			progress := func(i int) {
				if showsProgress(env.Err) {
					fmt.Fprintf(env.Err, "checking %s (up to %v)…", eps[i], timeout+timeout*3/20)
				}
			}
			progress(0)
			failed := false
			reports := doctor.RunLayered(cmd.Context(), layered, opt)
			var insideErr error
			if inside {
				reports = fromInside(env, cmd, ref, args, &insideErr)
			}
			for i, r := range reports {
				if showsProgress(env.Err) {
					fmt.Fprint(env.Err, "\r\x1b[K") // clear the progress line
				}
				if err := cmd.Context().Err(); err != nil {
					return &ExitError{Code: ExitFail, Err: errors.New("interrupted")}
				}
				failed = failed || !r.Reachable
				if asJSON {
					if err := enc.Encode(r); err != nil {
						return err
					}
				} else {
					if i > 0 {
						env.Out.Write([]byte("\n"))
					}
					if err := r.WriteText(env.Out, doctor.TextOptions{Color: colorOK(env)}); err != nil {
						return err
					}
				}
				if i+1 < len(eps) {
					progress(i + 1)
				}
			}
			if insideErr != nil {
				return &ExitError{Code: ExitFail, Err: insideErr}
			}
			if failed {
				return &ExitError{Code: ExitFail}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&hold, "hold", doctor.DefaultHold, "how long to hold one connection that opens, to catch a server that accepts and then drops it (beside the other checks; at most --timeout; 0 skips it)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long name resolution and each probe wait for an answer; the checks after resolution take at most about 15% more together")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each target's report as one JSON object a line (JSON Lines, schema reach.check/v1)")
	cmd.Flags().StringVar(&network, "network", "tcp", "tcp, tcp4 or tcp6: which address family of a name to check")
	cmd.Flags().StringVar(&netns, "netns", "", "run the ladder from inside this network namespace: an ip netns `NAME`, or a PATH such as /proc/PID/ns/net; needs root")
	local.add(cmd.Flags())
	cmd.Flags().IntVar(&pid, "pid", 0, "run the ladder from inside the network namespace of process `PID` (a container's); needs root")
	remote.add(cmd)
	layerOpt.add(cmd.Flags())
	return cmd
}

// colorOK reports whether stdout is a terminal and NO_COLOR is unset.
func colorOK(env *Env) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(env.Out)
}
