package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/server"
)

// complete runs cobra's __complete, as the shell scripts do, and returns
// the values offered (without descriptions) and the directive line.
func complete(t *testing.T, args ...string) (vals []string, directive string) {
	t.Helper()
	code, out, errs := run(t, append([]string{"__complete"}, args...)...)
	if code != ExitOK {
		t.Fatalf("reach __complete %q: exit %d, %s", args, code, errs)
	}
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, ":") {
			directive = line
			continue
		}
		v, _, _ := strings.Cut(line, "\t")
		vals = append(vals, v)
	}
	return vals, directive
}

func TestCompletionOffersFlagValues(t *testing.T) {
	var policies, modes, faults []string
	for _, p := range dial.Policies {
		policies = append(policies, string(p))
	}
	for _, m := range server.Modes {
		modes = append(modes, string(m))
	}
	for _, f := range server.FaultKinds {
		faults = append(faults, string(f))
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"connect", "--policy", ""}, policies},
		{[]string{"connect", "--policy", "r"}, []string{"round-robin", "random", "race"}},
		{[]string{"serve", "--mode", ""}, modes},
		{[]string{"serve", "--fault", ""}, faults},
		{[]string{"check", "--network", ""}, []string{"tcp", "tcp4", "tcp6"}},
		{[]string{"fault", "refuse", "--backend", ""}, []string{"nft", "iptables"}},
		{[]string{"watch", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"agent", "--log-format", "j"}, []string{"json"}},
	} {
		got, directive := complete(t, c.args...)
		if !slices.Equal(got, c.want) || directive != ":4" {
			t.Errorf("reach %q<TAB>: %q %s, want %q :4 (no files)", c.args, got, directive, c.want)
		}
	}
	// Each offered value is one the command accepts.
	for _, p := range policies {
		if _, err := dial.ParsePolicy(p); err != nil {
			t.Errorf("--policy %s offered, refused: %v", p, err)
		}
	}
}

// reach check <TAB> offers the targets of the endpoints of reach.yaml.
func TestCompletionOffersConfigTargets(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(cfg, []byte("endpoints:\n"+
		"  - {name: db, target: '127.0.0.1:5432'}\n"+
		"  - {name: cache, target: '127.0.0.1:6379'}\n"+
		"  - {name: web, target: 'localhost:8080'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REACH_CONFIG", cfg)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"check", ""}, []string{"127.0.0.1:5432", "127.0.0.1:6379", "localhost:8080"}},
		{[]string{"wait", "127.0.0.1:5432", "127"}, []string{"127.0.0.1:5432", "127.0.0.1:6379"}},
		{[]string{"connect", "loc"}, []string{"localhost:8080"}},
		{[]string{"baseline", "save", "-c", "../../examples/reach.yaml", "127.0.0.1:6"}, []string{"127.0.0.1:6379"}},
	} {
		if got, _ := complete(t, c.args...); !slices.Equal(got, c.want) {
			t.Errorf("reach %q<TAB>: %q, want %q", c.args, got, c.want)
		}
	}
	// The descriptions are the endpoints' names.
	if _, out, _ := run(t, "__complete", "check", "127.0.0.1:54"); !strings.Contains(out, "127.0.0.1:5432\tdb\n") {
		t.Errorf("reach check 127.0.0.1:54<TAB> = %q, want the target described as db", out)
	}
	t.Setenv("REACH_CONFIG", filepath.Join(t.TempDir(), "missing.yaml"))
	if got, directive := complete(t, "check", ""); len(got) != 0 || directive != ":4" {
		t.Errorf("without a config: %q %s, want nothing offered and no file names", got, directive)
	}
}

// reach gen-docs writes a man page for every command a user can run, and
// the three shells' completion scripts.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := run(t, "gen-docs", "man", filepath.Join(dir, "man")); code != ExitOK {
		t.Fatalf("gen-docs man: exit %d: %s", code, errs)
	}
	root := NewRoot(&Env{Stdio: Stdio{In: strings.NewReader(""), Out: &strings.Builder{}, Err: &strings.Builder{}}})
	for _, c := range root.Commands() {
		page := filepath.Join(dir, "man", "reach-"+c.Name()+".1")
		b, err := os.ReadFile(page)
		switch {
		case c.Hidden || c.Name() == "help":
			if err == nil {
				t.Errorf("%s: a page for the hidden command %s", page, c.Name())
			}
		case err != nil:
			t.Errorf("no man page for reach %s: %v", c.Name(), err)
		case !strings.Contains(string(b), ".SH NAME") || !strings.Contains(string(b), c.Short[:20]):
			t.Errorf("%s lacks its NAME section or its summary %q", page, c.Short)
		case strings.Contains(string(b), "Auto generated"):
			t.Errorf("%s carries cobra's dated stamp: releases would not be reproducible", page)
		}
	}
	if code, _, errs := run(t, "gen-docs", "completion", filepath.Join(dir, "completion")); code != ExitOK {
		t.Fatalf("gen-docs completion: exit %d: %s", code, errs)
	}
	for _, name := range []string{"reach.bash", "_reach", "reach.fish"} {
		if b, err := os.ReadFile(filepath.Join(dir, "completion", name)); err != nil || !strings.Contains(string(b), "__complete") {
			t.Errorf("%s: %v, or it does not call reach __complete", name, err)
		}
	}
	if code, _, errs := run(t, "gen-docs", "html", dir); code != ExitUsage || !strings.Contains(errs, "give man or completion") {
		t.Errorf("gen-docs html: exit %d, %q; want a usage error", code, errs)
	}
}
