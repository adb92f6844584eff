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
	)
	cmd := &cobra.Command{
		Use:   "wait TARGET... [-- CMD ARGS...]",
		Short: "Block until endpoints accept TCP connections, then run a command",
		Long: `Wait tries each target until it accepts a TCP connection (every target, or
any one with --any), then runs CMD if one is given after --, in wait's
place (exec: CMD keeps the pid, gets signals as sent, and its exit status
is the one seen). Attempts start 50ms apart and back off to --interval.
A proxy in front of the server (docker-proxy, a load balancer) may accept
while the server behind it is down: --check-accept then holds each
connection 200ms and counts a reset or close as not ready.

On timeout, each target that is not ready is reported with its last class
(refused, timeout, dns, ...), the likely cause, and what to run next.
Progress is shown on stderr when it is a terminal; -q keeps wait silent
except for failures.

--json prints one object on stdout: ready, elapsed_ms, timeout_ms and
targets[] (target, ready, after_ms, attempts, class: the last attempt's,
error, hint).

Exit status: 0 ready (or CMD's status), 1 timed out or interrupted,
2 usage error, 126/127 CMD could not be run.`,
		Example: `  reach wait 127.0.0.1:5432 --timeout 30s -- psql -h 127.0.0.1   # start when the db is up
  reach wait db:5432 cache:6379 -- ./app                         # every target
  reach wait db1:5432 db2:5432 --any -q                          # any one; exit status only
  reach wait 127.0.0.1:8080 --check-accept -- ./smoke-test       # behind docker-proxy
  reach wait api:443 --json | jq '.targets[] | {target, after_ms}'`,
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
			eps, err := endpoint.ParseEndpoints(targets, 0)
			if err != nil {
				return &UsageError{Err: err}
			}
			if err := mustBePositive(durationFlag{"timeout", timeout}, durationFlag{"interval", interval}); err != nil {
				return err
			}
			var progress io.Writer
			if !quiet && !asJ && showsProgress(env.Err) {
				progress = env.Err
			}
			o := waitOptions{timeout: timeout, interval: interval, any: anyOne, progress: progress}
			if checkAccept {
				o.readWait = 200 * time.Millisecond
			}
			res := waitReady(env.Ctx, eps, o)
			if asJ {
				enc := json.NewEncoder(env.Out)
				enc.SetIndent("", "  ")
				enc.Encode(res)
			}
			if !res.Ready {
				if !asJ {
					for _, t := range res.Targets {
						if !t.Ready {
							fmt.Fprintf(env.Err, "reach: %s\n", t.Hint)
						}
					}
				}
				return &ExitError{Code: ExitFail}
			}
			if !quiet && !asJ {
				for _, t := range res.Targets {
					if t.Ready {
						fmt.Fprintf(env.Err, "reach: %s ready after %s (%s)\n", t.Target, fmtDuration(time.Duration(t.AfterMS*float64(time.Millisecond))), plural(t.Attempts, "attempt"))
					}
				}
			}
			if command == nil {
				return nil
			}
			return runAfterWait(env, command)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	f.DurationVar(&interval, "interval", 250*time.Millisecond, "longest pause between attempts to one target")
	f.BoolVar(&anyOne, "any", false, "ready when any one target accepts (default: all)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress or success output; failures are still explained")
	f.BoolVar(&asJ, "json", false, "print the result as one JSON object on stdout")
	f.BoolVar(&checkAccept, "check-accept", false, "count a target ready only if it keeps the connection 200ms without reset or close (a proxy such as docker-proxy accepts while its backend is down)")
	return cmd
}

type waitOptions struct {
	timeout, interval time.Duration
	any               bool
	readWait          time.Duration // see dial.Options.ReadWait
	progress          io.Writer     // nil: no progress line
}

// waitResult is what wait found, also its --json form.
type waitResult struct {
	Ready     bool          `json:"ready"`
	ElapsedMS float64       `json:"elapsed_ms"`
	TimeoutMS float64       `json:"timeout_ms"`
	Targets   []*waitTarget `json:"targets"`
	mu        sync.Mutex    // guards the targets while waiting
	start     time.Time
}

type waitTarget struct {
	Target   string  `json:"target"`
	Ready    bool    `json:"ready"`
	AfterMS  float64 `json:"after_ms,omitempty"`
	Attempts int     `json:"attempts"`
	Class    string  `json:"class,omitempty"` // the last attempt's class
	Error    string  `json:"error,omitempty"`
	Hint     string  `json:"hint,omitempty"`
}

// waitReady dials every target until it accepts (or any one, with o.any) or
// the timeout ends. Each target has its own dialer retrying without end;
// the timeout bounds them all.
func waitReady(ctx context.Context, eps []endpoint.Endpoint, o waitOptions) *waitResult {
	res := &waitResult{TimeoutMS: ms(o.timeout), start: time.Now()}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ep := range eps {
		wt := &waitTarget{Target: ep.String()}
		res.Targets = append(res.Targets, wt)
		d := dial.New([]endpoint.Endpoint{ep}, dial.Options{
			Retries:  -1,
			Backoff:  dial.Backoff{Initial: 50 * time.Millisecond, Max: o.interval},
			Eject:    dial.Ejection{Consecutive: -1},
			ReadWait: o.readWait,
			OnAttempt: func(a dial.Attempt) {
				res.mu.Lock()
				defer res.mu.Unlock()
				wt.Attempts++
				if a.Class != probe.Canceled || wt.Class == "" {
					wt.Class = a.Class.String()
					wt.Error = ""
					if a.Err != nil {
						wt.Error = a.Err.Error()
					}
				}
			},
		})
		wg.Go(func() {
			conn, err := d.DialContext(ctx)
			if err != nil {
				return
			}
			conn.Close()
			res.mu.Lock()
			wt.Ready, wt.AfterMS = true, ms(time.Since(res.start))
			wt.Class, wt.Error = probe.Open.String(), ""
			res.mu.Unlock()
			if o.any {
				cancel()
			}
		})
	}
	stopProgress := func() {}
	if o.progress != nil {
		stopProgress = res.showProgress(ctx, o.progress)
	}
	wg.Wait()
	stopProgress()

	res.mu.Lock()
	defer res.mu.Unlock()
	res.ElapsedMS = ms(time.Since(res.start))
	ready := 0
	for _, t := range res.Targets {
		if t.Ready {
			ready++
		}
	}
	res.Ready = ready == len(res.Targets) || (o.any && ready > 0)
	if !res.Ready {
		for _, t := range res.Targets {
			if !t.Ready {
				t.Hint = waitHint(t, o.timeout, parent.Err() != nil)
			}
		}
	}
	return res
}

// waitHint says what the target last did, the likely cause, and what to run.
// After an interrupt it says so instead of naming the timeout.
func waitHint(t *waitTarget, timeout time.Duration, interrupted bool) string {
	c := probe.Class(t.Class)
	after := "after " + timeout.String()
	if interrupted {
		after = "when interrupted"
	}
	if t.Class == "" {
		return fmt.Sprintf("%s: no attempt finished %s; try: reach check %s", t.Target, after, t.Target)
	}
	likely := ""
	if causes := c.Causes(); len(causes) > 0 {
		likely = " — likely: " + causes[0]
	}
	return fmt.Sprintf("%s still %s %s%s; try: reach check %s", t.Target, c, after, likely, t.Target)
}

// showProgress rewrites one status line on w every 250ms until stopped.
func (r *waitResult) showProgress(ctx context.Context, w io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-ctx.Done():
			case <-t.C:
			}
			r.mu.Lock()
			parts := make([]string, len(r.Targets))
			for i, t := range r.Targets {
				state := t.Class
				switch {
				case t.Ready:
					state = "ready"
				case state == "":
					state = "trying"
				}
				parts[i] = t.Target + " " + state
			}
			line := fmt.Sprintf("waiting %s: %s", time.Since(r.start).Round(time.Second), strings.Join(parts, ", "))
			r.mu.Unlock()
			fmt.Fprint(w, "\r\x1b[K"+line)
			if ctx.Err() != nil {
				<-done
				fmt.Fprint(w, "\r\x1b[K")
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// runAfterWait runs the command in place of reach (env.Exec), so it keeps
// our pid and gets every signal as sent, as wait-for-it's exec "$@" does.
// Without env.Exec it runs as a child with our streams, its exit status
// becomes ours, and an interrupt is passed on to it as SIGTERM.
func runAfterWait(env *Env, command []string) error {
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
	c := exec.CommandContext(env.Ctx, path, command[1:]...)
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
