package cli

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// isCobraUsage recognises the argument errors cobra itself produces
// (unknown command, wrong number of args), which have no type of their own.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// isTerminal reports whether w is a terminal; progress and colour go only there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// durationFlag is a duration flag's name and value, for mustBePositive.
type durationFlag struct {
	name string
	val  time.Duration
}

// mustBePositive returns a usage error naming the first flag that is zero or
// negative. The libraries read 0 as "use the default", which is not what
// someone who typed 0 meant, so the CLI refuses it instead.
func mustBePositive(flags ...durationFlag) error {
	for _, f := range flags {
		if f.val <= 0 {
			return usageErrorf("--%s %s: give a duration above zero, e.g. --%s 500ms", f.name, f.val, f.name)
		}
	}
	return nil
}

// minArgs is cobra.MinimumNArgs(1) with a message that says what to give.
func minArgs(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErrorf("give at least one TARGET (host:port) to %s", what)
		}
		return nil
	}
}
