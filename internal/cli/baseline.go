package cli

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/reach-tools/reach/baseline"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// ExitBaselineFile is baseline diff's status when the baseline file cannot
// be read (missing, unreadable, not a baseline, too large): a broken
// pipeline step, not a network that changed.
const ExitBaselineFile = 3

func init() { register("baseline", newBaselineCmd) }

func newBaselineCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "baseline",
		Short: "Record the reachability of a set of endpoints, and later say what changed",
		Long: `A baseline records, for every endpoint of a set, whether it could be reached
from this host (its class: open, refused, timeout, ...), the doctor's cause
when it could not, and its connect time, in a versioned JSON file. A diff
probes the same set again and says what changed.

The intended use is a pre/post pair around a change (a firewall rule set, a
deployment, a network migration), in CI or in the change ticket:

  reach baseline save -c reach.yaml -o pre.json     # before the change
  ... apply the firewall change ...
  reach baseline diff pre.json                      # after: exit 1 if anything changed`,
		Example: `  reach baseline save db:5432 cache:6379 -o pre.json
  reach baseline save -iL endpoints.txt -o pre.json
  reach baseline diff pre.json --json | jq '.broken[] | {target, cause: .now.cause, fix}'`,
	}
	cmd.AddCommand(newBaselineSaveCmd(env), newBaselineDiffCmd(env))
	return cmd
}

// baselineFlags are the probing flags save and diff share.
type baselineFlags struct {
	timeout     time.Duration
	concurrency int
	noDiagnose  bool
	maxDiag     int
}

func (fl *baselineFlags) add(f *pflag.FlagSet) {
	f.DurationVar(&fl.timeout, "timeout", probe.DefaultTimeout, "longest wait for one connection attempt")
	f.IntVar(&fl.concurrency, "concurrency", baseline.DefaultConcurrency, "probes in flight at once")
	f.BoolVar(&fl.noDiagnose, "no-diagnose", false, "classes only: run no doctor on failures (faster; no causes or fixes)")
	f.IntVar(&fl.maxDiag, "max-diagnoses", baseline.DefaultMaxDiagnoses, "run the doctor on at most N failures; the rest keep their class (0: no limit)")
}

func (fl *baselineFlags) options(env *Env) (baseline.Options, *baselineProgress, error) {
	if err := mustBePositive(durationFlag{"timeout", fl.timeout}); err != nil {
		return baseline.Options{}, nil, err
	}
	if fl.concurrency < 1 || fl.concurrency > 65536 {
		return baseline.Options{}, nil, usageErrorf("--concurrency %d: give 1 to 65536", fl.concurrency)
	}
	if fl.maxDiag < 0 {
		return baseline.Options{}, nil, usageErrorf("--max-diagnoses %d: give 0 (no limit) or more", fl.maxDiag)
	}
	o := baseline.Options{Timeout: fl.timeout, Concurrency: fl.concurrency, NoDiagnosis: fl.noDiagnose,
		MaxDiagnoses: fl.maxDiag}
	if fl.maxDiag == 0 {
		o.MaxDiagnoses = -1
	}
	var p *baselineProgress
	if showsProgress(env.Err) {
		p = &baselineProgress{w: env.Err}
		o.Progress = p.update
	}
	return o, p, nil
}

func newBaselineSaveCmd(env *Env) *cobra.Command {
	var (
		fl                    baselineFlags
		output, list, watchCf string
		hubURL                string
		force                 bool
	)
	cmd := &cobra.Command{
		Use:   "save [TARGET...] [-iL FILE] [-c reach.yaml] [--hub URL] -o FILE",
		Short: "Probe a set of endpoints and record what each did",
		Long: `Save probes every endpoint of the set once from this host, runs the doctor on
each that failed (so the file says why: firewall-drop, not-listening, ...;
at most --max-diagnoses of them, --no-diagnose none), and writes the baseline to -o FILE as JSON
(schema reach.baseline/v1: when and on which host it was taken, then one
entry per endpoint with source, target, class, cause and connect_ms).

The set is the TARGETs (host:port), the targets of a list file (-iL FILE,
"-" for stdin: host:port separated by spaces, commas or lines, '#' starts a
comment), and the endpoints of a reach watch config (-c reach.yaml: names,
timeouts, source addresses and interfaces kept). A watch config's agents:
section is not probed: those pairs are probed by the agents, from their
hosts; --hub URL adds the hub's whole matrix to the file: every (agent,
target) pair with a result, its class and connect time as the agent last
saw it, read from the hub's dashboard API (/agents/matrix.json) with the
token in REACH_WATCH_TOKEN. The hub's config would only say which pairs to
probe, and only each agent can probe from its own host. Causes of the
agents' failures are not recorded: reach check TARGET --hub asks the
target's agent.

The file is written atomically (a temporary file beside it, then moved into
place) and an existing file is kept unless --force. "-o -" writes to stdout.

Exit status: 0 saved (whatever the endpoints did), 1 not saved (the file
exists, cannot be written, or interrupted), 2 usage error.`,
		Example: `  reach baseline save 198.18.0.2:22 198.18.0.2:5432 -o pre.json
  reach baseline save -c reach.yaml -o pre.json --force
  reach baseline save -iL endpoints.txt -o - | jq '.entries[] | select(.class != "open")'`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if err := f.Parse(nmapArgs(args)); err != nil {
				return &UsageError{Err: err}
			}
			if help, _ := f.GetBool("help"); help {
				return cmd.Help()
			}
			if output == "" {
				return usageErrorf("give -o FILE: where to write the baseline (- for stdout)")
			}
			targets, from, err := baselineTargets(env, f.Args(), list, watchCf, hubURL != "")
			if err != nil {
				return err
			}
			opt, progress, err := fl.options(env)
			if err != nil {
				return err
			}
			if hubURL != "" {
				opt.Hub = &baseline.Hub{URL: hubURL, Token: os.Getenv("REACH_WATCH_TOKEN")}
				from = strings.TrimPrefix(from+", hub matrix", ", ")
			}
			if output != "-" && !force {
				if _, err := os.Lstat(output); err == nil {
					// Say so before probing, not after.
					return &ExitError{Code: ExitFail, Err: &baseline.FileError{Path: output, Op: "write", Err: baseline.ErrExists}}
				}
			}
			file, err := baseline.Save(cmd.Context(), targets, opt)
			progress.clear()
			if errors.Is(err, baseline.ErrTarget) {
				return &UsageError{Err: err}
			}
			if err != nil {
				return &ExitError{Code: ExitFail, Err: err}
			}
			file.From = from
			if output == "-" {
				return file.Encode(env.Out)
			}
			if err := baseline.Write(output, file, force); err != nil {
				return &ExitError{Code: ExitFail, Err: err}
			}
			fmt.Fprintf(env.Err, "reach: saved %s to %s (%s)\n", plural(len(file.Entries), "endpoint"), output, tally(file.Entries))
			if file.Undiagnosed > 0 && !fl.noDiagnose {
				fmt.Fprintf(env.Err, "reach: %s past --max-diagnoses %d saved without a cause\n",
					plural(file.Undiagnosed, "failure"), fl.maxDiag)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", `write the baseline to FILE ("-": stdout)`)
	f.StringVar(&list, "input-list", "", `read targets from FILE ("-" for stdin); -iL FILE works too`)
	f.StringVarP(&watchCf, "config", "c", "", "probe the endpoints of this reach watch config")
	f.StringVar(&hubURL, "hub", "", "also record this hub's whole matrix, as its agents see it (token: REACH_WATCH_TOKEN)")
	f.BoolVar(&force, "force", false, "replace FILE if it exists")
	fl.add(f)
	return cmd
}

// baselineTargets gathers the set from arguments, a list and a watch config,
// and says where it came from.
func baselineTargets(env *Env, args []string, list, watchCf string, hub bool) ([]baseline.Target, string, error) {
	targets, err := baseline.ParseTargets(args)
	if err != nil {
		return nil, "", &UsageError{Err: err}
	}
	var from []string
	if len(args) > 0 {
		from = append(from, "targets")
	}
	if list != "" {
		in, name := env.In, "standard input"
		if list != "-" {
			fh, err := os.Open(list)
			if err != nil {
				return nil, "", &ExitError{Code: ExitFail, Err: fmt.Errorf("reading targets: %w", err)}
			}
			defer fh.Close()
			in, name = fh, list
		}
		more, err := baseline.ReadTargets(in)
		if err != nil {
			return nil, "", usageErrorf("-iL %s: %w", name, err)
		}
		targets = append(targets, more...)
		from = append(from, "list "+name)
	}
	if watchCf != "" {
		cfg, err := monitor.LoadConfig(watchCf)
		if err != nil {
			return nil, "", usageErrorf("-c: %w", err)
		}
		targets = append(targets, baseline.FromWatchConfig(cfg)...)
		from = append(from, "watch config "+watchCf)
	}
	if len(targets) == 0 && !hub {
		return nil, "", usageErrorf("no targets; give host:port targets, -iL FILE, -c reach.yaml or --hub URL")
	}
	return targets, strings.Join(from, ", "), nil
}

// tally counts entries by class: "10 open, 2 refused".
func tally(es []baseline.Entry) string {
	var order []probe.Class
	n := map[probe.Class]int{}
	for _, e := range es {
		if n[e.Class] == 0 {
			order = append(order, e.Class)
		}
		n[e.Class]++
	}
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%d %s", n[c], c)
	}
	return strings.Join(parts, ", ")
}

func newBaselineDiffCmd(env *Env) *cobra.Command {
	var (
		fl       baselineFlags
		asJSON   bool
		factor   float64
		slowerBy time.Duration
		hubURL   string
	)
	cmd := &cobra.Command{
		Use:   "diff FILE",
		Short: "Probe a baseline's endpoints again and print what changed",
		Long: `Diff probes every endpoint of the baseline FILE again, from this host, and
prints what changed since it was saved:

  broken      open then, failing now: the doctor is run on these (only
              these, so a diff of a healthy set stays fast) and names the
              cause (firewall-drop, no-route, not-listening, ...) and the fix
  newly open  refused or filtered then, accepting now: a firewall opened
              wider than before, or a service that should not be there
  changed     failing then and now, differently (refused -> timeout), with
              the doctor's cause
  slower      open then and now, the connect time at least --slower times
              the baseline's and --slower-by more (both must hold; the
              fastest of three probes counts)

and everything else in one summary line.

A firewall change, checked before and after:

  reach baseline save -iL endpoints.txt -o pre.json
  nft -f new-rules.nft
  reach baseline diff pre.json || echo "the change did more than intended"

--json prints one object (schema reach.baseline-diff/v1): baseline
{taken_at, host}, taken_at, host, broken[], newly_open[], changed[],
slower[] (each: source, name, target, kind, was, now {class, cause,
connect_ms}, and the doctor's confidence, issue, evidence, fix), gone[]
(the hub's pairs its matrix no longer has: a change too), unchanged,
total, undiagnosed, stale. Lists are [] when empty. Progress goes to
stderr on a terminal.

A baseline with a hub's matrix (save --hub) is compared with the agents'
next results: diff waits until each pair has one newer than its start (at
most two of the agents' intervals; the pairs still without one are
compared as last seen and counted stale). Set REACH_WATCH_TOKEN to the
hub's dashboard token.

Exit status: 0 nothing changed, 1 something changed (or the diff failed:
interrupted, the hub could not be asked), 2 usage error, 3 FILE cannot be
read or is not a baseline.`,
		Example: `  reach baseline diff pre.json
  reach baseline diff pre.json --slower 3 --slower-by 100ms
  reach baseline diff pre.json --json | jq -e '.broken == []'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("give the baseline FILE to compare with (written by reach baseline save)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, progress, err := fl.options(env)
			if err != nil {
				return err
			}
			if factor < 1 {
				return usageErrorf("--slower %v: give a factor of 1 or more, e.g. --slower 2", factor)
			}
			if err := mustBePositive(durationFlag{"slower-by", slowerBy}); err != nil {
				return err
			}
			if !cmd.Flags().Changed("timeout") {
				opt.Timeout = 0 // the baseline's own
			}
			file, err := baseline.Read(args[0])
			if err != nil {
				return &ExitError{Code: ExitBaselineFile, Err: err}
			}
			if hubURL != "" || file.Hub != "" {
				opt.Hub = &baseline.Hub{URL: cmp.Or(hubURL, file.Hub), Token: os.Getenv("REACH_WATCH_TOKEN")}
			}
			rep, err := baseline.Diff(cmd.Context(), file, baseline.DiffOptions{Options: opt,
				Slower: baseline.Threshold{Factor: factor, By: slowerBy}})
			progress.clear()
			if errors.Is(err, baseline.ErrTarget) {
				return &ExitError{Code: ExitBaselineFile, Err: fmt.Errorf("%s: %w", args[0], err)}
			}
			if err != nil {
				return &ExitError{Code: ExitFail, Err: err}
			}
			if asJSON {
				if err := json.NewEncoder(env.Out).Encode(rep); err != nil {
					return &ExitError{Code: ExitFail, Err: err}
				}
			} else {
				writeDiff(env.Out, args[0], rep)
			}
			if rep.Differs() {
				return &ExitError{Code: ExitFail}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the diff as one JSON object on stdout")
	f.Float64Var(&factor, "slower", baseline.DefaultSlowerFactor, "slower when the connect time is at least this many times the baseline's")
	f.DurationVar(&slowerBy, "slower-by", baseline.DefaultSlowerBy, "... and at least this much more")
	f.StringVar(&hubURL, "hub", "", "read the agents' pairs from this hub (default: the one the baseline names; token: REACH_WATCH_TOKEN)")
	fl.add(f)
	// Unless given, each probe waits as long as the baseline's did.
	t := f.Lookup("timeout")
	t.Usage, t.DefValue = "longest wait for one connection attempt (default: the baseline's)", "0s"
	return cmd
}

// writeDiff prints the changes, one block per pair, then the summary line.
func writeDiff(w io.Writer, path string, r *baseline.Report) {
	b := r.Baseline
	fmt.Fprintf(w, "Compared with %s (taken %s on %s, %s ago)\n", path, b.TakenAt.Format("2006-01-02 15:04:05Z"),
		b.Host, r.TakenAt.Sub(b.TakenAt).Round(time.Second))
	for _, c := range r.Broken {
		fmt.Fprintf(w, "\nBROKEN      %s: was open (%.3g ms), now %s%s\n", c.Target, c.Was.ConnectMS, c.Now.Class, causeOf(c))
		writeDoctor(w, c)
	}
	for _, c := range r.Changed {
		fmt.Fprintf(w, "\nCHANGED     %s: was %s%s, now %s%s\n", c.Target, c.Was.Class, wasCause(c), c.Now.Class, causeOf(c))
		writeDoctor(w, c)
	}
	for _, c := range r.Opened {
		fmt.Fprintf(w, "\nNEWLY OPEN  %s: was %s%s, now open (%.3g ms)\n            %s\n", c.Target, c.Was.Class, wasCause(c),
			c.Now.ConnectMS, c.Note)
	}
	for _, c := range r.Slower {
		fmt.Fprintf(w, "\nSLOWER      %s: %s\n", c.Target, c.Note)
	}
	for _, g := range r.Gone {
		fmt.Fprintf(w, "\nGONE        %s: the hub's matrix no longer has this pair\n", g)
	}
	if r.Stale > 0 {
		fmt.Fprintf(w, "\n%s of the hub sent no result newer than this diff within two intervals: compared as last seen\n",
			plural(r.Stale, "pair"))
	}
	if r.Undiagnosed > 0 {
		fmt.Fprintf(w, "\n%s broken or changed not diagnosed (--max-diagnoses, --no-diagnose): reach check TARGET explains one\n",
			thousands(int64(r.Undiagnosed)))
	}
	n := func(i int) string { return thousands(int64(i)) }
	gone := ""
	if len(r.Gone) > 0 {
		gone = ", " + n(len(r.Gone)) + " gone"
	}
	fmt.Fprintf(w, "\n%s: %s broken, %s newly open, %s changed, %s slower%s, %s unchanged (%s)\n",
		plural(r.Total, "endpoint"), n(len(r.Broken)), n(len(r.Opened)), n(len(r.Changed)), n(len(r.Slower)),
		gone, n(r.Unchanged), fmtDuration(time.Duration(r.DurationMS*float64(time.Millisecond))))
}

func causeOf(c baseline.Change) string {
	if c.Now.Cause == "" {
		return ""
	}
	s := ": " + string(c.Now.Cause)
	if c.Confidence != "" {
		s += " (" + string(c.Confidence) + ")"
	}
	return s
}

func wasCause(c baseline.Change) string {
	if c.Was.Cause == "" {
		return ""
	}
	return " (" + string(c.Was.Cause) + ")"
}

func writeDoctor(w io.Writer, c baseline.Change) {
	for _, l := range []struct{ k, v string }{{"issue", c.Issue}, {"evidence", c.Evidence}, {"fix", c.Fix}, {"note", c.Note}} {
		if l.v != "" {
			fmt.Fprintf(w, "            %-9s %s\n", l.k+":", l.v)
		}
	}
	if c.Fix == "" && c.Now.Cause != "" {
		fmt.Fprintf(w, "            more:     reach check %s\n", c.Target.Target)
	}
}

// baselineProgress redraws one line on a terminal: what is being done and
// how far it is.
type baselineProgress struct {
	w     io.Writer
	mu    sync.Mutex
	last  time.Time
	shown bool
}

func (p *baselineProgress) update(phase string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if done < total && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = time.Now(), true
	fmt.Fprintf(p.w, "\r\x1b[K%s %d/%d", phase, done, total)
}

// clear erases the line; a nil progress does nothing.
func (p *baselineProgress) clear() {
	if p == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
}
