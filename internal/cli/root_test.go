package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// run executes the reach command line in-process and returns its exit status and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestRootExitCodes(t *testing.T) {
	tests := []struct {
		args    []string
		code    int
		wantOut string
		wantErr string
	}{
		{args: []string{"--help"}, code: ExitOK, wantOut: "reach answers"},
		{args: []string{"version"}, code: ExitOK, wantOut: "reach "},
		{args: []string{"no-such-command"}, code: ExitUsage, wantErr: `reach: unknown command "no-such-command"`},
		{args: []string{"version", "--no-such-flag"}, code: ExitUsage, wantErr: "unknown flag"},
		{args: []string{"version", "extra"}, code: ExitUsage, wantErr: "unknown command"},
		{args: []string{"no-such-command"}, code: ExitUsage, wantErr: "usage: reach COMMAND ... (see: reach --help)"},
		{args: []string{"connect"}, code: ExitUsage, wantErr: "usage: reach connect TARGET... [flags] (see: reach connect --help)"},
		// cobra's "requires at least 1 arg(s), only received 0" taught nothing.
		{args: []string{"connect"}, code: ExitUsage, wantErr: "reach: give at least one TARGET (host:port) to connect to"},
		{args: []string{"check"}, code: ExitUsage, wantErr: "reach: give at least one TARGET (host:port) to check"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := run(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.wantOut) || !strings.Contains(errs, tt.wantErr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout ~%q, stderr ~%q", code, out, errs, tt.code, tt.wantOut, tt.wantErr)
			}
		})
	}
}

// Every command teaches by example.
func TestEveryCommandHasExamples(t *testing.T) {
	root := NewRoot(&Env{Stdio: Stdio{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}})
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" || c.Name() == "version" {
			continue
		}
		if c.Example == "" || c.Short == "" {
			t.Errorf("reach %s: missing Short or Example in --help", c.Name())
		}
		if owned := strings.Contains(" serve connect wait ports check scan ", " "+c.Name()+" "); owned && !strings.Contains(c.Long, "Exit status") {
			t.Errorf("reach %s: --help does not state the exit statuses", c.Name())
		}
	}
}
