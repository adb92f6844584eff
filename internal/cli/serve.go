package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/reach-tools/reach/server"
	"github.com/spf13/cobra"
)

func init() { register("serve", newServeCmd) }

func newServeCmd(env *Env) *cobra.Command {
	var (
		cfg      server.Config
		mode     string
		logs     logFlags
		faultArg string
	)
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR [--listen ADDR...]",
		Short: "Run a reference TCP server: echo, discard or banner, on one or more addresses",
		Long: `Run a TCP server on every --listen address at once, to test connectivity
against something known to be correct.

Modes:
  echo     send back every byte received, until the client closes (default)
  discard  read and drop everything
  banner   send --banner TEXT (a newline is added unless it ends with one),
           then close our side; --banner alone selects this mode

Either every address is bound or none is. When one cannot be bound, reach
says why and what to do, and exits 1: a port in use names the process that
holds it (pid and command); a port below 1024 without privilege lists the
ways to allow it; an address that is not on this host lists the host's
addresses.

--fault makes the server misbehave on purpose, to test clients (and reach
check) against it:
  never-accept        listen, never accept: the accept queue (--backlog,
                      1 by default here) fills, then SYNs are dropped
  accept-close        accept, then close at once
  accept-reset        accept, then reset (SO_LINGER 0)
  delay-accept=DUR    wait DUR before each accept, then serve
  stall               accept, never read or write
For faults a client meets before the server (refused, dropped, ICMP), see
reach fault.

Over --max-conns, a connection is accepted, told "busy: ..." in one line
and closed, so clients see why instead of timing out. A client that sends
nothing for --idle-timeout is closed. Accept errors such as "too many open
files" are logged and retried with a back-off (5ms doubling to 1s).

On SIGINT or SIGTERM the server stops accepting (new connections are
refused), lets open connections finish for up to --drain, closes the rest
and exits 0. A second SIGINT or SIGTERM ends the process at once.

Logs go to stderr: one line when each listener starts, one per connection
(remote address, duration, bytes in and out, how it ended), and errors;
--log-level debug also logs each accept.

Exit status: 0 after a shutdown on SIGINT or SIGTERM, 1 when an address
cannot be bound or serving fails, 2 usage error.`,
		Example: `  reach serve --listen 127.0.0.1:7000                  # echo server on loopback
  reach serve --listen :7000 --listen [::1]:7001       # several addresses, one process
  reach serve --listen 127.0.0.1:0 --log-format json   # any free port; read it from the log
  reach serve --listen :2222 --banner "SSH-2.0-test"   # greet and close, like a daemon would
  reach serve --listen :9000 --mode discard --max-conns 100 --idle-timeout 30s
  reach serve --listen :7000 --fault never-accept      # the backlog fills: reach check says overloaded
  printf hello | reach connect 127.0.0.1:7000          # talk to it`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Mode = server.Mode(mode)
			if cfg.Banner != "" && !cmd.Flags().Changed("mode") {
				cfg.Mode = server.ModeBanner // --banner alone selects banner mode
			}
			if cfg.Mode == server.ModeBanner && cfg.Banner != "" && !strings.HasSuffix(cfg.Banner, "\n") {
				cfg.Banner += "\n"
			}
			if faultArg != "" {
				f, err := server.ParseFault(faultArg)
				if err != nil {
					return usageErrorf("--fault %q: %w", faultArg, err)
				}
				cfg.Fault = f
			}
			log, err := logs.logger(env.Err)
			if err != nil {
				return err
			}
			cfg.Logger = log
			srv, err := server.Listen(cmd.Context(), cfg)
			var cfgErr *server.ConfigError
			var bindErr *server.BindError
			switch {
			case errors.As(err, &cfgErr):
				return serveUsageError(cfgErr)
			case errors.As(err, &bindErr):
				fmt.Fprintf(env.Err, "reach: %v\n", bindErr)
				for _, f := range bindErr.Fix() {
					fmt.Fprintf(env.Err, "  try: %s\n", f)
				}
				return &ExitError{Code: ExitFail}
			case err != nil:
				return &ExitError{Code: ExitFail, Err: err}
			}
			if err := srv.Serve(cmd.Context()); err != nil {
				return &ExitError{Code: ExitFail, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&cfg.Listen, "listen", "l", nil, "`ADDR` to listen on, HOST:PORT (repeatable; :PORT for every address, port 0 for a free one)")
	f.StringVar(&mode, "mode", string(server.ModeEcho), "`MODE`: echo, discard or banner")
	f.StringVar(&cfg.Banner, "banner", "", "`TEXT` sent to each client in banner mode")
	f.IntVar(&cfg.MaxConns, "max-conns", 0, "serve at most `N` connections at once; others are told \"busy\" and closed (0: no limit)")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "close a connection silent for this long (0: never)")
	f.DurationVar(&cfg.Drain, "drain", 10*time.Second, "on shutdown, how long open connections may finish before they are closed")
	f.IntVar(&cfg.Backlog, "backlog", 0, "listen backlog `N`, the accept queue's length (0: the system's, net.core.somaxconn)")
	f.StringVar(&faultArg, "fault", "", "misbehave on purpose: never-accept, accept-close, accept-reset, delay-accept=`DUR`, stall")
	logs.add(f, "info")
	return cmd
}

// serveFlags names the flag behind each server.ConfigError field.
var serveFlags = map[string]string{
	"listen address": "--listen",
	"mode":           "--mode",
	"banner":         "--banner",
	"max conns":      "--max-conns",
	"idle timeout":   "--idle-timeout",
	"drain":          "--drain",
	"backlog":        "--backlog",
	"fault":          "--fault",
}

// serveUsageError words a server.ConfigError (server.Config is serve's one
// validator) with the flag in place of the field's name.
func serveUsageError(ce *server.ConfigError) error {
	name, ok := serveFlags[ce.Field]
	if !ok {
		return &UsageError{Err: ce}
	}
	if ce.Value == "" {
		return usageErrorf("%s: %w", name, ce.Err)
	}
	return usageErrorf("%s %q: %w", name, ce.Value, ce.Err)
}
