package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

func init() { register("wait", newWaitCmd) }

func newWaitCmd(env *Env) *cobra.Command {
	var (
		timeout, interval  time.Duration
		anyOne, quiet, asJ bool
		checkAccept        bool
		layerOpt           layerFlags
	)
	cmd := &cobra.Command{
		Use:   "wait TARGET... [-- CMD ARGS...]",
		Short: "Block until endpoints accept TCP connections (or answer as ready: https://, grpc:// ...), then run a command",
		Long: `Wait tries each target until it accepts a TCP connection (every target, or
any one with --any), then runs CMD if one is given after --, in wait's
place (exec: CMD keeps the pid, gets signals as sent, and its exit status
is the one seen). Attempts start 50ms apart and back off to --interval.
A proxy in front of the server (docker-proxy, a load balancer) may accept
while the server behind it is down: --check-accept then holds each
connection 200ms and counts a reset or close as not ready.

A URL target waits for the layer it names: tls:// for a TLS handshake that
verifies, http(s):// for an expected status (and body), grpc(s):// for
SERVING from the standard health service, a database URL for its server's
readiness (when built in). A connection whose layer is not ready counts as
a failed attempt; on timeout wait says which layer never became ready and
why (the cause id and what the server answered).

` + layerHelp + `

On timeout, each target that is not ready is reported with its last class
(refused, timeout, dns, ...), the likely cause, and what to run next.
Progress is shown on stderr when it is a terminal; -q keeps wait silent
except for failures.

--json prints one JSON object, one line, on stdout (schema reach.wait/v1):
ready, elapsed_ms, timeout_ms and targets[] (target, ready, after_ms,
attempts, class: the last attempt's, error, hint; layer, cause, tls, app
for a layer above TCP).

Exit status: 0 ready (or CMD's own status, passed through unchanged),
124 --timeout passed before the targets were ready (as timeout(1) and
wait4x exit), 1 interrupted or a failure retrying cannot mend (local-error),
2 usage error, 126/127 CMD could not be run. So a script tells a timeout
(124) from CMD's own failure.`,
		Example: `  reach wait 127.0.0.1:5432 --timeout 30s -- psql -h 127.0.0.1   # start when the db is up
  reach wait db:5432 cache:6379 -- ./app                         # every target
  reach wait db1:5432 db2:5432 --any -q                          # any one; exit status only
  reach wait 127.0.0.1:8080 --check-accept -- ./smoke-test       # behind docker-proxy
  reach wait api:443 --json | jq '.targets[] | {target, after_ms}'
  reach wait http://127.0.0.1:8080/healthz --expect-status 200 -- ./smoke-test
  reach wait https://api.internal/ready --ca ca.pem --expect-body ok -- ./deploy
  reach wait grpc://127.0.0.1:50051/orders.Orders --timeout 2m -- ./client`,
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, command := args, []string(nil)
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				targets, command = args[:dash], args[dash:]
				if len(command) == 0 {
					return usageErrorf("nothing after --; give the command to run, e.g. reach wait db:5432 -- ./app")
				}
			}
			if len(targets) == 0 {
				return usageErrorf("give at least one TARGET (host:port) to wait for")
			}
			parsed, err := endpoint.ParseTargets(targets)
			if err != nil {
				return &UsageError{Err: err}
			}
			if err := layerOpt.check(parsed); err != nil {
				return err
			}
			eps := make([]endpoint.Endpoint, len(parsed))
			layers := make([]dial.Layers, len(parsed))
			for i, t := range parsed {
				eps[i] = t.Endpoint
				if layers[i].TLS, layers[i].App, err = layerOpt.layers(t); err != nil {
					return err
				}
			}
			if err := mustBePositive(durationFlag{"timeout", timeout}, durationFlag{"interval", interval}); err != nil {
				return err
			}
			o := dial.WaitOptions{Timeout: timeout, Interval: interval, Any: anyOne, Layers: layers}
			if checkAccept {
				o.ReadWait = 200 * time.Millisecond
			}
			var progress *waitProgress
			if !quiet && !asJ && showsProgress(env.Err) {
				progress = newWaitProgress(env.Err, eps)
				o.OnUpdate = progress.update
			}
			res, err := dial.Wait(cmd.Context(), eps, o)
			progress.stop()
			if res == nil {
				return &ExitError{Code: ExitFail, Err: err}
			}
			if asJ {
				json.NewEncoder(env.Out).Encode(newWaitJSON(res, timeout, parsed)) // one line
			}
			if !res.Ready {
				if !asJ {
					for i, t := range res.Targets {
						if !t.Ready {
							fmt.Fprintf(env.Err, "reach: %s\n", waitHint(t, parsed[i]))
						}
					}
				}
				return &ExitError{Code: waitExitCode(err)}
			}
			if !quiet && !asJ {
				for _, t := range res.Targets {
					if t.Ready {
						fmt.Fprintf(env.Err, "reach: %s ready after %s (%s)\n", t.Endpoint, fmtDuration(t.After), plural(t.Attempts, "attempt"))
					}
				}
			}
			if command == nil {
				return nil
			}
			return runAfterWait(cmd.Context(), env, command)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	f.DurationVar(&interval, "interval", dial.DefaultWaitInterval, "longest pause between attempts to one target")
	f.BoolVar(&anyOne, "any", false, "ready when any one target accepts (default: all)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress or success output; failures are still explained")
	f.BoolVar(&asJ, "json", false, "print the result as one JSON object, one line, on stdout (schema reach.wait/v1)")
	layerOpt.add(f)
	f.BoolVar(&checkAccept, "check-accept", false, "count a target ready only if it keeps the connection 200ms without reset or close (a proxy such as docker-proxy accepts while its backend is down)")
	return cmd
}

// ExitTimeout is wait's exit status when --timeout passed before the targets
// were ready: 124, as timeout(1) and wait4x use, so that reach wait ... --
// CMD tells a timeout from CMD's own failure.
const ExitTimeout = 124

// waitExitCode is ExitTimeout when err says the wait's time ran out, and
// ExitFail for an interrupt or a dial that stopped retrying.
func waitExitCode(err error) int {
	var we *dial.WaitError
	if errors.As(err, &we) && errors.Is(we.Err, context.DeadlineExceeded) {
		return ExitTimeout
	}
	return ExitFail
}

// waitSchema names wait's --json object (schema/reach.wait.v1.json).
const waitSchema = "reach.wait/v1"

// waitJSON is wait's --json form of a dial.WaitResult.
type waitJSON struct {
	Schema    string           `json:"schema"` // waitSchema
	Ready     bool             `json:"ready"`
	ElapsedMS float64          `json:"elapsed_ms"`
	TimeoutMS float64          `json:"timeout_ms"`
	Targets   []waitTargetJSON `json:"targets"`
}

type waitTargetJSON struct {
	Target   string  `json:"target"`
	Ready    bool    `json:"ready"`
	AfterMS  float64 `json:"after_ms,omitempty"`
	Attempts int     `json:"attempts"`
	Class    string  `json:"class,omitempty"` // the last attempt's class
	Error    string  `json:"error,omitempty"`
	Hint     string  `json:"hint,omitempty"`
	// Layer and Cause: the layer above TCP that was not ready, and why.
	Layer string           `json:"layer,omitempty"`
	Cause string           `json:"cause,omitempty"`
	TLS   *probe.TLSResult `json:"tls,omitempty"`
	App   *app.Result      `json:"app,omitempty"`
}

func newWaitJSON(res *dial.WaitResult, timeout time.Duration, targets []endpoint.Target) waitJSON {
	j := waitJSON{Schema: waitSchema, Ready: res.Ready, ElapsedMS: ms(res.Elapsed), TimeoutMS: ms(timeout),
		Targets: []waitTargetJSON{}}
	for i, t := range res.Targets {
		tj := waitTargetJSON{Target: targets[i].String(), Ready: t.Ready, AfterMS: ms(t.After),
			Attempts: t.Attempts, Class: t.Class.String()}
		if t.Err != nil {
			tj.Error = t.Err.Error()
		}
		if !t.Ready {
			tj.Hint = waitHint(t, targets[i])
		}
		tj.Layer, tj.Cause, tj.TLS, tj.App = t.Layer, string(t.Cause), t.TLS, t.App
		j.Targets = append(j.Targets, tj)
	}
	return j
}

// waitHint is what a target not ready did, its likely cause, and what to
// run (the check of the same URL, so the same layers).
func waitHint(t dial.WaitTarget, target endpoint.Target) string {
	return fmt.Sprintf("%s; try: reach check %s", t.Why, target)
}

// waitProgress rewrites one status line every 250ms with what each target
// last did, until stopped.
type waitProgress struct {
	w       io.Writer
	start   time.Time
	mu      sync.Mutex
	targets []dial.WaitTarget
	done    chan struct{}
	stopped chan struct{}
}

func newWaitProgress(w io.Writer, eps []endpoint.Endpoint) *waitProgress {
	p := &waitProgress{w: w, start: time.Now(), targets: make([]dial.WaitTarget, len(eps)),
		done: make(chan struct{}), stopped: make(chan struct{})}
	for i, ep := range eps {
		p.targets[i].Endpoint = ep
	}
	go p.run()
	return p
}

// update is dial.WaitOptions.OnUpdate.
func (p *waitProgress) update(i int, t dial.WaitTarget) {
	p.mu.Lock()
	p.targets[i] = t
	p.mu.Unlock()
}

func (p *waitProgress) run() {
	defer close(p.stopped)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			fmt.Fprint(p.w, "\r\x1b[K")
			return
		case <-t.C:
		}
		p.mu.Lock()
		parts := make([]string, len(p.targets))
		for i, t := range p.targets {
			state := t.Class.String()
			switch {
			case t.Ready:
				state = "ready"
			case state == "":
				state = "trying"
			}
			parts[i] = t.Endpoint.String() + " " + state
		}
		p.mu.Unlock()
		line := fmt.Sprintf("waiting %s: %s", time.Since(p.start).Round(time.Second), strings.Join(parts, ", "))
		fmt.Fprint(p.w, "\r\x1b[K"+line)
	}
}

// stop clears the line; a nil progress does nothing.
func (p *waitProgress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	<-p.stopped
}

// runAfterWait runs the command in place of reach (env.Exec), so it keeps
// our pid and gets every signal as sent, as wait-for-it's exec "$@" does.
// Without env.Exec it runs as a child with our streams, its exit status
// becomes ours, and an interrupt is passed on to it as SIGTERM.
func runAfterWait(ctx context.Context, env *Env, command []string) error {
	path, err := exec.LookPath(command[0])
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return &ExitError{Code: 127, Err: fmt.Errorf("wait: targets ready, but cannot run %q: %w; check the command name and PATH", command[0], err)}
	case err != nil:
		return &ExitError{Code: 126, Err: fmt.Errorf("wait: targets ready, but cannot run %q: %w; is it an executable file?", command[0], err)}
	}
	if env.Exec != nil {
		err := env.Exec(path, command, os.Environ())
		return &ExitError{Code: 126, Err: fmt.Errorf("wait: targets ready, but cannot run %q: %w", command[0], err)}
	}
	c := exec.CommandContext(ctx, path, command[1:]...)
	c.Args[0] = command[0]
	c.Stdin, c.Stdout, c.Stderr = env.In, env.Out, env.Err
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = 10 * time.Second
	err = c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &ExitError{Code: code}
	}
	return &ExitError{Code: 126, Err: fmt.Errorf("wait: targets ready, but cannot run %q: %w", command[0], err)}
}
