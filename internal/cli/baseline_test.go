package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/testnet"
)

// save, then diff with nothing changed (0), a listener gone (1, with the
// doctor's cause), a file that is not a baseline (3), usage errors (2).
func TestBaselineSaveDiff(t *testing.T) {
	dir := t.TempDir()
	pre := filepath.Join(dir, "pre.json")
	up := testnet.Listen(t)
	down := testnet.ClosedPort(t).String()
	list := filepath.Join(dir, "targets.txt")
	os.WriteFile(list, []byte("# loopback\n"+down+"\n"), 0o600)

	code, _, errs := runWithInput(t, "", "baseline", "save", up.Addr().String(), "-iL", list, "-o", pre, "--timeout", "1s")
	if code != ExitOK || !strings.Contains(errs, "saved 2 endpoints to "+pre+" (1 open, 1 refused)") {
		t.Fatalf("save: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runWithInput(t, "", "baseline", "save", up.Addr().String(), "-o", pre)
	if code != ExitFail || !strings.Contains(errs, pre+" exists; give --force") {
		t.Errorf("save over a file: exit %d, stderr %q", code, errs)
	}

	code, out, errs := runWithInput(t, "", "baseline", "diff", pre)
	if code != ExitOK || !strings.Contains(out, "2 endpoints: 0 broken, 0 newly open, 0 changed, 0 slower, 2 unchanged") {
		t.Fatalf("diff, nothing changed: exit %d\n%s%s", code, out, errs)
	}

	up.Close()
	code, out, errs = runWithInput(t, "", "baseline", "diff", pre)
	if code != ExitFail || !strings.Contains(out, "BROKEN      "+up.Addr().String()+": was open") ||
		!strings.Contains(out, "now refused: not-listening") || !strings.Contains(out, "fix:") {
		t.Errorf("diff, a listener gone: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runWithInput(t, "", "baseline", "diff", pre, "--json")
	var rep struct {
		Schema string `json:"schema"`
		Broken []struct {
			Target string                 `json:"target"`
			Now    struct{ Cause string } `json:"now"`
		} `json:"broken"`
		NewlyOpen []json.RawMessage `json:"newly_open"`
		Unchanged int               `json:"unchanged"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitFail {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Schema != "reach.baseline-diff/v1" || len(rep.Broken) != 1 || rep.Broken[0].Now.Cause != "not-listening" ||
		rep.NewlyOpen == nil || rep.Unchanged != 1 {
		t.Errorf("--json: %+v\n%s", rep, out)
	}

	notBaseline := filepath.Join(dir, "other.json")
	os.WriteFile(notBaseline, []byte(`{"schema":"reach.scan/v1"}`), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"diff", notBaseline}, ExitBaselineFile, `schema "reach.scan/v1"; this reach reads "reach.baseline/v1"`},
		{[]string{"diff", filepath.Join(dir, "missing.json")}, ExitBaselineFile, "no such file"},
		{[]string{"diff"}, ExitUsage, "give the baseline FILE"},
		{[]string{"diff", pre, "--slower", "0.5"}, ExitUsage, "--slower 0.5"},
		{[]string{"save", "127.0.0.1:1"}, ExitUsage, "give -o FILE"},
		{[]string{"save", "-o", filepath.Join(dir, "x.json")}, ExitUsage, "no targets"},
		{[]string{"save", "127.0.0.1", "-o", filepath.Join(dir, "x.json")}, ExitUsage, "127.0.0.1"},
	} {
		code, _, errs := runWithInput(t, "", append([]string{"baseline"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

// -o - writes the baseline to stdout; -iL - reads the targets from stdin.
func TestBaselineSaveStdio(t *testing.T) {
	down := testnet.ClosedPort(t).String()
	code, out, errs := runWithInput(t, down+"\n", "baseline", "save", "-iL", "-", "-o", "-", "--no-diagnose")
	if code != ExitOK || !strings.Contains(out, `"schema": "reach.baseline/v1"`) ||
		!strings.Contains(out, `"target":"`+down+`","class":"refused","connect_ms":0`) {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
}
