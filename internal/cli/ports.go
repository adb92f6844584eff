package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/reach-tools/reach/sockets"
	"github.com/spf13/cobra"
)

func init() { register("ports", newPortsCmd) }

func newPortsCmd(env *Env) *cobra.Command {
	var (
		opt           sockets.Options
		port          int
		asJSON        bool
		allNamespaces bool
		netns         string
	)
	cmd := &cobra.Command{
		Use:   "ports",
		Short: "List listening TCP sockets and the processes that own them",
		Long: `List the TCP sockets of this host (IPv4 and IPv6) with the process that owns
each one, like "ss -ltnp". By default only listening sockets are shown, and
only those of reach's own network namespace.

--all-namespaces (-A) lists every network namespace of the host: containers'
(found through their processes' /proc/PID/ns/net) and those named by ip netns
(/run/netns). It adds two columns. NETNS names the namespace: its ip netns
name, "host" (that of process 1), "self" (reach's own, when process 1's is
hidden), or "pid N", a process in it ("nsenter -t N -n ss -ltnp" shows the
same sockets). CONTAINER is the container of the socket's owner, or else of
the namespace's first process, as its cgroup names it: the runtime (docker,
containerd, cri-o, podman, kubernetes) and the id's first 12 digits, as
"docker ps" prints them. A server in a container that listens on 127.0.0.1
is reachable only from inside that container: this is where that shows.
--netns NAME|PATH lists one namespace: an ip netns name, or a namespace file
such as /proc/PID/ns/net.

Entering another namespace needs root: without it reach lists its own and
says, as a warning, which namespaces it could not see and why.

LOCAL *:PORT is an IPv6 socket on [::] that takes IPv4 too (dual-stack), as
ss writes it; [::]:PORT takes IPv6 only (IPV6_V6ONLY). Only the netlink
source can tell them apart: with procfs every [::] shows as [::]:PORT.

For a listening socket RECV-Q is the number of connections waiting to be
accepted and SEND-Q the backlog: when RECV-Q exceeds SEND-Q the queue is full
and new connections are dropped (clients see timeouts).

Without root, the owners of other users' sockets cannot be seen; reach says
how many sockets that affects.

--json prints one JSON object, one line: {"schema": "reach.ports/v1",
"source": "netlink" or "procfs", "warnings": [...],
"sockets": [{"proto", "local", "remote", "state", "recv_q", "send_q",
"v6only", "uid", "inode", "processes": [{"pid", "command", "user", "uid",
"state", "container"}], "process_state", "namespace", "container"}]}. With
--all-namespaces or --netns each socket has "namespace": {"inode", "name",
"pid", "path", "self", "init", "processes", "container", "source"} and the
object lists them all in "namespaces", and what could not be seen in
"not_seen": [{"namespace", "processes", "reason": "permission", "vanished"
or "error", "error"}]. A "container" is {"id", "runtime", "pod"}.

On macOS the sockets and their processes come from lsof (source "lsof"; without
root only your own processes' sockets), on Windows from the IP Helper API's
TCP tables (source "iphlpapi"; a service's program is named only from an
elevated prompt, its pid always; uid is -1). The columns and --json are the
same; -A and --netns are Linux's.

Exit status: 0 when a socket matched, 1 when none did (so scripts can ask
"is anything listening on 5432?"), 2 for bad flags.`,
		Example: `  reach ports                      # every listening socket
  reach ports --port 5432          # who listens on 5432, and on which address?
  reach ports --process postgres   # where does postgres listen?
  reach ports --pid 812 --all      # every TCP socket of process 812
  reach ports -A --port 80         # port 80 in every container and namespace
  reach ports --netns blue         # the namespace ip netns calls blue
  reach ports --json | jq '.sockets[].local'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// 0 is "no filter" only as the default: --port 0 given by hand
			// would silently list every socket.
			if port < 0 || port > 65535 || (port == 0 && cmd.Flags().Changed("port")) {
				return usageErrorf("--port %d: a port is between 1 and 65535", port)
			}
			if opt.PID < 0 || (opt.PID == 0 && cmd.Flags().Changed("pid")) {
				return usageErrorf("--pid %d: a process id is 1 or more", opt.PID)
			}
			if strings.TrimSpace(opt.Process) == "" && cmd.Flags().Changed("process") {
				// An empty name (an unset shell variable) would list every socket.
				return usageErrorf("--process %q: give a command name, e.g. --process postgres", opt.Process)
			}
			var ref sockets.NamespaceRef
			if cmd.Flags().Changed("netns") {
				if allNamespaces {
					return usageErrorf("--netns and --all-namespaces: give one (--all-namespaces already lists %s)", netns)
				}
				var err error
				if ref, err = sockets.ParseNamespaceRef(netns); err != nil {
					return usageErrorf("--netns %q: give a name from ip netns list, or a path such as /proc/PID/ns/net", netns)
				}
			}
			opt.Port = uint16(port)
			var t sockets.Table
			var err error
			switch {
			case allNamespaces:
				t, err = sockets.ListAllNamespaces(cmd.Context(), opt)
			case netns != "":
				t, err = sockets.ListNamespace(cmd.Context(), ref, opt)
			default:
				t, err = sockets.List(cmd.Context(), opt)
			}
			if err != nil {
				return &ExitError{Code: ExitFail, Err: fmt.Errorf("listing sockets: %w", err)}
			}
			if asJSON {
				// One line; the Table writes its schema and [] for empty lists.
				if err := json.NewEncoder(env.Out).Encode(t); err != nil {
					return err
				}
			} else {
				if len(t.Sockets) == 0 {
					hint := ""
					if !opt.All {
						hint = " (--all also shows connections in other states)"
					}
					fmt.Fprintln(env.Err, "reach: no "+describe(opt)+" found"+hint)
				} else if err := writePortsTable(env, t, opt.All, allNamespaces || netns != ""); err != nil {
					return err
				}
				for _, w := range t.Warnings {
					fmt.Fprintf(env.Err, "reach: warning: %s\n", w)
				}
			}
			if len(t.Sockets) == 0 {
				return &ExitError{Code: ExitFail}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "port", 0, "only sockets on this local port")
	f.IntVar(&opt.PID, "pid", 0, "only sockets of this process id")
	f.StringVar(&opt.Process, "process", "", "only sockets of processes with this command name (as in ps -o comm)")
	f.BoolVarP(&opt.All, "all", "a", false, "all TCP states, not only LISTEN")
	f.BoolVar(&asJSON, "json", false, "print the table as one JSON object, one line (schema reach.ports/v1)")
	f.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "every network namespace of the host (containers too), with NETNS and CONTAINER columns; needs root")
	f.StringVar(&netns, "netns", "", "only this network namespace: an ip netns `NAME`, or a PATH such as /proc/PID/ns/net; needs root")
	return cmd
}

func describe(opt sockets.Options) string {
	s := "listening TCP sockets"
	if opt.All {
		s = "TCP sockets"
	}
	var w []string
	if opt.Port != 0 {
		w = append(w, "port "+strconv.Itoa(int(opt.Port)))
	}
	if opt.PID != 0 {
		w = append(w, "pid "+strconv.Itoa(opt.PID))
	}
	if opt.Process != "" {
		w = append(w, "process "+strconv.Quote(opt.Process))
	}
	if len(w) > 0 {
		s += " matching " + strings.Join(w, ", ")
	}
	return s
}

func writePortsTable(env *Env, t sockets.Table, all, namespaces bool) error {
	// tabwriter writes cell by cell: buffer, or a big table costs a system
	// call per cell.
	bw := bufio.NewWriter(env.Out)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	head := "PROTO\tLOCAL\tSTATE\tRECV-Q\tSEND-Q\tPROCESS"
	if all {
		head = "PROTO\tLOCAL\tREMOTE\tSTATE\tRECV-Q\tSEND-Q\tPROCESS"
	}
	if namespaces {
		head = "NETNS\tCONTAINER\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, s := range t.Sockets {
		owner := s.Owner()
		if len(s.Processes) > 0 && s.ProcessState == "stopped" {
			owner += " [stopped]"
		}
		if s.Inode == 0 && len(s.Processes) == 0 {
			owner = "-" // no process holds it (TIME_WAIT, a request)
		}
		source := t.Source
		if s.Namespace != nil {
			source = s.Namespace.Source
		}
		local := s.Local.String()
		if source == "netlink" && s.Local.Addr() == netip.IPv6Unspecified() && !s.V6Only {
			local = "*:" + strconv.Itoa(int(s.Local.Port())) // takes IPv4 too, as ss writes it
		}
		if namespaces {
			ns, container := "-", "-"
			if s.Namespace != nil {
				ns = s.Namespace.String()
			}
			if s.Container != nil {
				container = s.Container.Short()
			}
			fmt.Fprintf(tw, "%s\t%s\t", ns, container)
		}
		if all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.Proto, local, s.Remote, s.State, s.RecvQ, s.SendQ, owner)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.Proto, local, s.State, s.RecvQ, s.SendQ, owner)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}
