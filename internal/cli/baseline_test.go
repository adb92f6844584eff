package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
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

// save --hub records the hub's matrix with the token from
// REACH_WATCH_TOKEN, and the file keeps the hub's URL, not the token.
func TestBaselineSaveHub(t *testing.T) {
	const token = "dashboard-token-0123456789abcdef"
	m := hub.Matrix{Interval: agent.Duration(time.Second), Sources: []string{"web-1"}, Targets: []string{"db-1:5432"},
		Cells: [][]*hub.Cell{{{Class: probe.Open, RTT: agent.Duration(time.Millisecond), Last: time.Now()}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.URL.Path != "/agents/matrix.json" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(m)
	}))
	defer srv.Close()
	pre := filepath.Join(t.TempDir(), "pre.json")
	code, _, errs := runWithInput(t, "", "baseline", "save", "--hub", srv.URL, "-o", pre)
	if code != ExitFail || !strings.Contains(errs, "401 unauthorized: set REACH_WATCH_TOKEN") {
		t.Errorf("without the token: exit %d, %s", code, errs)
	}
	t.Setenv("REACH_WATCH_TOKEN", token)
	code, _, errs = runWithInput(t, "", "baseline", "save", "--hub", srv.URL, "-o", pre)
	data, _ := os.ReadFile(pre)
	if code != ExitOK || !strings.Contains(string(data), `"hub": "`+srv.URL+`"`) ||
		!strings.Contains(string(data), `{"source":"web-1","target":"db-1:5432","class":"open","connect_ms":1}`) ||
		strings.Contains(string(data), token) {
		t.Fatalf("exit %d, %s\n%s", code, errs, data)
	}
	code, out, errs := runWithInput(t, "", "baseline", "diff", pre)
	if code != ExitOK || !strings.Contains(out, "1 endpoint: 0 broken") {
		t.Errorf("diff: exit %d\n%s%s", code, out, errs)
	}
}
