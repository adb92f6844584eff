// Package cli maps the reach command line onto the library packages: one file
// per subcommand, each a thin layer from flags to a library call and a renderer.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/reach-tools/reach/internal/version"
)

// Exit statuses shared by every command.
const (
	ExitOK    = 0 // success, or the target is reachable
	ExitFail  = 1 // the operation failed, or the target is not reachable
	ExitUsage = 2 // bad flags or arguments
)

// Stdio is where a command reads and writes; tests pass buffers.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// Exec replaces the process with a program, as syscall.Exec does; reach
	// wait -- CMD uses it so CMD gets reach's pid and signals. Nil runs CMD
	// as a child with these streams instead (tests, embedding).
	Exec func(path string, argv, envv []string) error
}

// commandFactory builds one subcommand. Each subcommand file registers its
// factory in init, so adding a command never touches this file.
type commandFactory func(*Env) *cobra.Command

var factories = map[string]commandFactory{}

func register(name string, f commandFactory) {
	if _, dup := factories[name]; dup {
		panic("cli: duplicate command " + name)
	}
	factories[name] = f
}

// Env is what every subcommand gets: the standard streams. The process
// context reaches each command as cmd.Context(), not through Env.
type Env struct {
	Stdio
}

// UsageError marks a bad invocation (exit status 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError carries an exit status chosen by a command; its message, when not
// empty, has already been printed unless Print is set.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// NewRoot builds the reach command tree.
func NewRoot(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "reach",
		Short: "Explain why this machine cannot connect to a host:port, and what to do about it",
		Long: `reach answers "why can't this machine connect to that host:port?" and helps
programs avoid the problem in the first place.

Every command is built on one probe: a bounded TCP connection attempt whose
outcome is classified (open, refused, timeout, host-unreachable,
net-unreachable, dns, reset, closed-by-peer, local-error).`,
		Example: `  reach serve --listen 127.0.0.1:7000          # a reference TCP server
  printf hello | reach connect 127.0.0.1:7000   # talk to it
  reach check db.internal:5432                  # diagnose a failure`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what reach version prints.
		Version: version.Get().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(env.In)
	root.SetOut(env.Out)
	root.SetErr(env.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		root.AddCommand(factories[n](env))
	}
	registerCompletions(root)
	return root
}

// Run executes the command line and returns the process exit status.
func Run(ctx context.Context, args []string, stdio Stdio) int {
	env := &Env{Stdio: stdio}
	root := NewRoot(env)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintf(stdio.Err, "reach: %v\n", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintf(stdio.Err, "reach: %v\n", err)
	var usage *UsageError
	if errors.As(err, &usage) || isCobraUsage(err) {
		// Say how the command is called and where the examples are.
		use := cmd.UseLine()
		if !cmd.Runnable() {
			use = cmd.CommandPath() + " COMMAND ..."
		}
		fmt.Fprintf(stdio.Err, "  usage: %s (see: %s --help)\n", use, cmd.CommandPath())
		return ExitUsage
	}
	return ExitFail
}

// showsProgress reports whether progress lines, redrawn with \r and ESC[K,
// belong on w: a terminal that understands them.
func showsProgress(w io.Writer) bool {
	return isTerminal(w) && os.Getenv("TERM") != "dumb"
}
