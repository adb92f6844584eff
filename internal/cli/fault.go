package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reach-tools/reach/fault"
	"github.com/spf13/cobra"
)

func init() { register("fault", newFaultCmd) }

func newFaultCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault MODE --port N --for DUR | fault list | fault clear",
		Short: "Put a connect-level fault on a port of this host for a while, to test clients",
		Long: `Put a connect-level fault on a TCP port of this host, always for a bounded
time (--for, at most ` + fault.MaxFor.String() + `), to see how clients cope:

  refuse       answer the SYN with a reset (REJECT with tcp-reset): the
               client gets "connection refused", as if nothing listened
  drop         drop the SYN (DROP): the client retransmits, then times out
  reject-icmp  answer the SYN with ICMP port-unreachable (iptables' REJECT
               default; ICMPv6 port-unreachable for IPv6): "connection
               refused" too, but carried by ICMP, as from a firewall

Only a connection's first SYN is hit; established connections go on.
--probability P hits that share of SYNs; --source CIDR only clients there.
For a server run by reach itself, reach serve --fault also has
never-accept, accept-close, accept-reset, delay-accept=DUR and stall.

The fault is a rule in reach's own nftables table (inet reach_fault), or
where nft is missing its own iptables chain (REACH-FAULT, with one jump
from INPUT); no other rule is ever touched. Each rule's comment says
"reach-fault/1 ID MODE port=N exp=UNIX-TIME own=PID.START".

It stays in the foreground and removes the fault when the time is up or
on Ctrl-C/SIGTERM. After a crash (kill -9) a detached remover started
with it removes the fault at once, and lives at most until the expiry;
every reach fault run, list and clear also sweep faults whose time is up
or whose process is gone. reach fault list shows the faults (--json);
reach fault clear removes every one, live or not.

Needs root (CAP_NET_ADMIN). Exit status: 0 when the fault ran its time
or was ended by a signal, 1 when it could not be applied, 2 usage error.`,
		Example: `  reach fault refuse --port 5432 --for 30s                # clients get "refused" for 30 s
  reach fault drop --port 8080 --for 10s --probability 0.3 # a third of the SYNs vanish
  reach fault reject-icmp --port 443 --for 1m --source 198.18.0.0/24
  reach fault list --json
  reach fault clear`,
		// Flags are the modes'; parsed here they would hide an unknown mode.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageErrorf("give a mode (%s), list or clear", joinModes())
			case args[0] == "-h" || args[0] == "--help":
				return cmd.Help()
			}
			return usageErrorf("unknown mode %q: give one of %s, list or clear (reach serve --fault has the server's faults)", args[0], joinModes())
		},
	}
	for _, m := range fault.Modes {
		cmd.AddCommand(newFaultModeCmd(env, m))
	}
	cmd.AddCommand(newFaultListCmd(env), newFaultClearCmd(env), newFaultRemoverCmd(env))
	return cmd
}

func joinModes() string {
	s := make([]string, len(fault.Modes))
	for i, m := range fault.Modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// faultHost is the fault.Host the commands share; warnings go to w.
func faultHost(backend string, w io.Writer) *fault.Host {
	return &fault.Host{Backend: backend, Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

func newFaultModeCmd(env *Env, mode fault.Mode) *cobra.Command {
	var (
		port      int
		dur       time.Duration
		prob      float64
		source    string
		backend   string
		noRemover bool
		logs      logFlags
	)
	cmd := &cobra.Command{
		Use:   string(mode) + " --port N --for DUR",
		Short: "Apply the " + string(mode) + " fault (see reach fault --help)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger(env.Err)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("for") {
				return usageErrorf("--for is required: how long the fault lasts, e.g. --for 30s (at most %v)", fault.MaxFor)
			}
			if port < 1 || port > 65535 {
				return usageErrorf("--port %d: give the TCP port to fault, 1-65535", port)
			}
			spec := fault.Spec{Mode: mode, Port: uint16(port), For: dur, Probability: prob}
			if source != "" {
				p, err := parseSource(source)
				if err != nil {
					return usageErrorf("--source %q: %v", source, err)
				}
				spec.Source = p
			}
			if err := spec.Validate(); err != nil {
				var se *fault.SpecError
				if errors.As(err, &se) {
					return usageErrorf("--%s %q: %s", se.Field, se.Value, se.Why)
				}
				return &UsageError{Err: err}
			}
			h := faultHost(backend, env.Err)
			h.Logger = log
			err = h.Run(cmd.Context(), spec, func(a fault.Active) {
				fmt.Fprintf(env.Out, "fault %s: %s on tcp port %d for %v, from %s%s, until %s (%s); Ctrl-C ends it\n",
					a.ID, a.Mode, a.Port, dur, sourceText(a.Source), probText(a.Probability),
					a.Expires.UTC().Format("15:04:05 UTC"), backendText(a.Backend))
				if !noRemover {
					if err := startRemover(a.ID); err != nil {
						fmt.Fprintf(env.Err, "reach: warning: no detached remover (%v); after a crash, the next reach fault run removes the fault\n", err)
					}
				}
			})
			switch {
			case err == nil:
				fmt.Fprintf(env.Out, "fault removed: time is up\n")
			case cmd.Context().Err() != nil && errors.Is(err, cmd.Context().Err()):
				fmt.Fprintf(env.Out, "fault removed: ended early\n")
			case errors.Is(err, fault.ErrInvalid):
				return &UsageError{Err: err}
			default:
				return faultFail(err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "port", 0, "the TCP `PORT` of this host to fault")
	f.DurationVar(&dur, "for", 0, "how long the fault lasts (required; at most "+fault.MaxFor.String()+")")
	f.Float64Var(&prob, "probability", 1, "the share `P` of SYNs hit, 0 < P <= 1")
	f.StringVar(&source, "source", "", "only clients in this `CIDR` (or address)")
	f.StringVar(&backend, "backend", "", "nft or iptables (default: nft when it works, else iptables)")
	f.BoolVar(&noRemover, "no-remover", false, "start no detached remover (tests of the sweep after a crash)")
	logs.add(f, "warn")
	return cmd
}

// faultFail is exit status 1 with the error and what usually fixes it.
func faultFail(err error) error {
	return &ExitError{Code: ExitFail, Err: fmt.Errorf("%w\n  try: run as root (CAP_NET_ADMIN), with nft or iptables installed", err)}
}

// parseSource takes a prefix or a single address.
func parseSource(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p != p.Masked() {
			return p, fmt.Errorf("host bits set; use %v", p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("give a CIDR such as 198.18.0.0/24, or an address")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func sourceText(p netip.Prefix) string {
	if !p.IsValid() {
		return "every client"
	}
	return p.String()
}

func probText(p float64) string {
	if p == 0 {
		return ""
	}
	return fmt.Sprintf(", %g of SYNs", p)
}

func backendText(b string) string {
	if b == "nft" {
		return "nft table inet reach_fault"
	}
	return "iptables chain REACH-FAULT"
}

// startRemover starts reach fault remover ID, detached in its own session
// so that a Ctrl-C or a kill of this process does not reach it. It waits
// for it, so it is reaped if it ends first.
func startRemover(id string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c := exec.Command(self, "fault", "remover", id)
	detach(c)
	if err := c.Start(); err != nil {
		return err
	}
	go c.Wait()
	return nil
}

func newFaultRemoverCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:    "remover ID",
		Short:  "Remove fault ID once its owner is gone or its time is up (started by reach fault)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h := faultHost("", env.Err)
			list, err := h.List(cmd.Context())
			if err != nil {
				return &ExitError{Code: ExitFail, Err: err}
			}
			for _, a := range list {
				if a.ID == args[0] {
					if err := h.Watch(cmd.Context(), a, 0); err != nil {
						return &ExitError{Code: ExitFail, Err: err}
					}
				}
			}
			return nil
		},
	}
}

// faultSchema names one line of reach fault list --json
// (schema/reach.fault.v1.json).
const faultSchema = "reach.fault/v1"

// faultJSON is one fault in reach fault list --json: a line each.
type faultJSON struct {
	Schema      string      `json:"schema"`
	ID          string      `json:"id"`
	Mode        fault.Mode  `json:"mode"`
	Port        uint16      `json:"port"`
	Source      string      `json:"source"`
	Probability float64     `json:"probability"`
	Expires     time.Time   `json:"expires"`
	Owner       fault.Owner `json:"owner"`
	Backend     string      `json:"backend"`
	Rules       int         `json:"rules"`
	Leftover    string      `json:"leftover,omitempty"`
}

func newFaultListCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show the faults reach applied on this host (--json for scripts)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := faultHost("", env.Err)
			if _, err := h.Sweep(cmd.Context()); err != nil {
				return faultFail(err)
			}
			list, err := h.List(cmd.Context())
			if err != nil {
				return faultFail(err)
			}
			if asJSON {
				// JSON Lines: one fault a line, nothing when there is none.
				enc := json.NewEncoder(env.Out)
				for _, a := range list {
					src := ""
					if a.Source.IsValid() {
						src = a.Source.String()
					}
					if err := enc.Encode(faultJSON{faultSchema, a.ID, a.Mode, a.Port, src, cmpProb(a.Probability),
						a.Expires.UTC(), a.Owner, a.Backend, a.Rules, a.Leftover}); err != nil {
						return err
					}
				}
				return nil
			}
			if len(list) == 0 {
				fmt.Fprintln(env.Out, "no faults")
				return nil
			}
			tw := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tMODE\tPORT\tSOURCE\tP\tEXPIRES\tOWNER\tBACKEND")
			for _, a := range list {
				left := time.Until(a.Expires).Round(time.Second)
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%g\t%s (in %v)\t%d\t%s\n", a.ID, a.Mode, a.Port,
					sourceText(a.Source), cmpProb(a.Probability), a.Expires.UTC().Format("15:04:05 UTC"),
					max(left, 0), a.Owner.PID, a.Backend)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each fault as one JSON object a line (JSON Lines, schema reach.fault/v1; none: no line)")
	return cmd
}

// cmpProb shows "every SYN" (stored as 0) as 1.
func cmpProb(p float64) float64 {
	if p == 0 {
		return 1
	}
	return p
}

func newFaultClearCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "clear",
		Short: "Remove every fault reach applied on this host, live or left over",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			removed, err := faultHost("", env.Err).Clear(cmd.Context())
			for _, a := range removed {
				fmt.Fprintf(env.Out, "removed fault %s: %s on tcp port %d\n", a.ID, a.Mode, a.Port)
			}
			if err != nil {
				return faultFail(err)
			}
			if len(removed) == 0 {
				fmt.Fprintln(env.Out, "no faults")
			}
			return nil
		},
	}
}
