package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/server"
)

// flagValues are the values a flag of that name takes, wherever it appears,
// each with what it means: shell completion offers them (reach completion).
var flagValues = map[string][]string{
	"policy": values(dial.Policies, map[string]string{
		"ordered": "try the targets in the order given", "round-robin": "start at the next target each round",
		"random": "a fresh random order each round", "race": "start the next every --attempt-delay; first wins"}),
	"mode": values(server.Modes, map[string]string{
		"echo": "send back what each client sends", "discard": "read and drop",
		"banner": "send --banner, then echo"}),
	"fault": values(server.FaultKinds, map[string]string{
		"never-accept": "listen, never accept: the queue fills, then SYNs drop",
		"accept-close": "accept, then close at once", "accept-reset": "accept, then reset",
		"delay-accept": "wait before each accept: delay-accept=2s", "stall": "accept, then never read or write"}),
	"network":    {"tcp\tevery address family of a name", "tcp4\tIPv4 only", "tcp6\tIPv6 only"},
	"backend":    {"nft\tnftables (reach's own table)", "iptables\tiptables (reach's own chain)"},
	"log-level":  {"debug", "info", "warn", "error"},
	"log-format": {"text\tkey=value lines", "json\tone JSON object a line"},
}

// values pairs each value with its description for cobra: "value\tdescription".
func values[T ~string](vs []T, desc map[string]string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
		if d := desc[string(v)]; d != "" {
			out[i] += "\t" + d
		}
	}
	return out
}

// targetCommands take host:port targets as arguments; completion offers the
// targets of the endpoints in the reach.yaml they would read.
var targetCommands = []string{"check", "connect", "wait", "save"}

// registerCompletions teaches every command of the tree the values of its
// flags and arguments.
func registerCompletions(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { registerFlag(c, f) })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { registerFlag(c, f) })
		if slices.Contains(targetCommands, c.Name()) && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = completeTargets
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func registerFlag(c *cobra.Command, f *pflag.Flag) {
	var fn cobra.CompletionFunc
	switch vs, ok := flagValues[f.Name]; {
	case ok:
		fn = func(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
			var out []string
			for _, v := range vs {
				if strings.HasPrefix(v, prefix) {
					out = append(out, v)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	case f.Name == "config" && f.Shorthand == "c":
		fn = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		}
	case f.Name == "netns":
		fn = completeNetns
	default:
		return
	}
	// A flag registered twice (inherited by a subcommand) keeps the first.
	_ = c.RegisterFlagCompletionFunc(f.Name, fn)
}

// completeNetns offers the namespaces ip netns names.
func completeNetns(_ *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil, cobra.ShellCompDirectiveDefault // a PATH works too
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, cobra.ShellCompDirectiveDefault
}

// completeTargets offers the targets of the endpoints in the command's -c
// config, else $REACH_CONFIG, else ./reach.yaml, described by their names.
// Nothing is probed or resolved.
func completeTargets(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	path := os.Getenv("REACH_CONFIG")
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		path = f.Value.String()
	}
	if path == "" {
		path = "reach.yaml"
	}
	cfg, err := monitor.LoadConfig(filepath.Clean(path))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range cfg.Endpoints {
		if t := e.Target.String(); strings.HasPrefix(t, toComplete) {
			out = append(out, t+"\t"+e.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
