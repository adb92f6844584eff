package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/internal/version"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/web"
)

func TestWatchCheckConfig(t *testing.T) {
	code, out, errs := run(t, "watch", "-c", "../../examples/reach.yaml", "--check-config")
	if code != ExitOK || !strings.Contains(out, "valid, 5 endpoints") || !strings.Contains(out, "telnet-must-stay-shut") ||
		!strings.Contains(out, "every 10s, timeout 2s from 127.0.0.2 by lo\n") {
		t.Errorf("example config: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = run(t, "watch", "-c", "../../monitor/testdata/invalid-webhook.yaml", "--check-config")
	if code != ExitFail || out != "" ||
		!strings.Contains(errs, `invalid-webhook.yaml:3: alerts.rise: got "0"; want a whole number from 1 to 100`) {
		t.Errorf("invalid config: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
	code, _, errs = run(t, "watch", "-c", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != ExitFail || !strings.Contains(errs, "no such file") {
		t.Errorf("missing config: exit %d, stderr %s", code, errs)
	}
	code, _, errs = run(t, "watch", "-c", "../../examples/reach.yaml", "--retain", "30x")
	if code != ExitUsage || !strings.Contains(errs, "--retain") {
		t.Errorf("bad --retain: exit %d, stderr %s", code, errs)
	}
	for _, args := range [][]string{{"--concurrency", "0"}, {"--concurrency", "-5"}, {"--doctor-timeout", "-1s"},
		{"--listen", "bogus"}, {"--listen", "127.0.0.1:70000"}, {"--listen", "127.0.0.1"}, {"--listen", "127.0.0.1:"},
		{"--listen", "no_such host!:80"}, {"--listen", "[::1:80"}, {"--listen", "127.0.0.1:-1"},
		{"--read-timeout", "0s"}, {"--idle-timeout", "-1s"}, {"--write-timeout", "0s"}, {"--max-conns", "-1"},
		{"--stream-lifetime", "0s"}, {"--replica-interval", "0s"}, {"--replica-interval", "3s"}} {
		db := filepath.Join(t.TempDir(), "r.db")
		code, _, errs = run(t, append([]string{"watch", "-c", "../../examples/reach.yaml", "--store", db}, args...)...)
		if code != ExitUsage || !strings.Contains(errs, args[0]) {
			t.Errorf("%v: exit %d, stderr %s", args, code, errs)
		}
		if _, err := os.Stat(db); !os.IsNotExist(err) {
			t.Errorf("%v: the store was created before the bad flag was refused (%v)", args, err)
		}
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "1d": 24 * time.Hour} {
		if got, err := parseRetention(in); err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0d", "-1d", "d", "10m", "1.5d", "99999d", "87601h", "1000000h"} {
		if _, err := parseRetention(in); err == nil {
			t.Errorf("parseRetention(%q) accepted", in)
		}
	}
}

// watchProcess is reach watch running in-process on loopback.
type watchProcess struct {
	url    string
	errs   *testnet.Buffer
	cancel context.CancelFunc
	done   chan int
}

var dashboardLine = regexp.MustCompile(`dashboard (http://127\.0\.0\.1:\d+/)`)

func startWatch(t *testing.T, config string, args ...string) *watchProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchProcess{errs: &testnet.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	args = append([]string{"watch", "-c", config, "--store", filepath.Join(t.TempDir(), "reach.db"), "--listen", "127.0.0.1:0"}, args...)
	go func() {
		w.done <- Run(ctx, args, Stdio{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: w.errs})
	}()
	t.Cleanup(func() { w.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := dashboardLine.FindStringSubmatch(w.errs.String()); m != nil {
			w.url = m[1]
			return w
		}
		select {
		case code := <-w.done:
			t.Fatalf("reach watch exited %d:\n%s", code, w.errs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("reach watch did not start:\n%s", w.errs.String())
		}
	}
}

func (w *watchProcess) stop(t *testing.T) {
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.cancel = nil
	select {
	case code := <-w.done:
		if code != ExitOK {
			t.Errorf("reach watch exited %d:\n%s", code, w.errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("reach watch did not stop within 30s")
	}
}

func (w *watchProcess) endpoints(t *testing.T) map[string]web.EndpointView {
	t.Helper()
	resp, err := http.Get(w.url + "api/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Endpoints []web.EndpointView }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	out := map[string]web.EndpointView{}
	for _, e := range list.Endpoints {
		out[e.Endpoint] = e
	}
	return out
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reach watch --store postgres://... keeps history in PostgreSQL
// (REACH_TEST_POSTGRES; scripts/test starts one), and a restart carries on.
func TestWatchWithPostgres(t *testing.T) {
	dsn := os.Getenv("REACH_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("REACH_TEST_POSTGRES is not set; in CI the PostgreSQL store must be tested (scripts/test starts one with scripts/pg-start)")
		}
		t.Skip("REACH_TEST_POSTGRES not set; run scripts/pg-start and export its DSN")
	}
	// A fresh schema per run, dropped afterwards.
	schema := fmt.Sprintf("reach_cli_test_%d", time.Now().UnixNano())
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP SCHEMA " + schema + " CASCADE")
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	store := dsn + sep + "search_path=" + schema

	addr := testnet.ClosedPort(t).String()
	config := filepath.Join(t.TempDir(), "reach.yaml")
	writeConfig(t, config, "alerts: {fall: 1}\nendpoints:\n  - {name: gone, target: '"+addr+"', interval: 1s}\n")
	w := startWatch(t, config, "--store", store, "--no-doctor")
	if !strings.Contains(w.errs.String(), "(postgres)") {
		t.Errorf("not on PostgreSQL:\n%s", w.errs.String())
	}
	var first web.EndpointView
	testnet.Eventually(t, 30*time.Second, "gone down", func() bool { first = w.endpoints(t)["gone"]; return first.State == monitor.StateDown })
	w.stop(t)

	w = startWatch(t, config, "--store", store, "--no-doctor")
	again := w.endpoints(t)["gone"]
	if again.State != monitor.StateDown || !again.Since.Equal(first.Since) || again.Uptime24h == nil || *again.Uptime24h != 0 {
		t.Errorf("after a restart on PostgreSQL: %+v (uptime %v), before %+v", again.Status, again.Uptime24h, first.Status)
	}
}

// --check-config catches what would stop reach watch at start: the hub's
// token file is read, not only the agents: section's syntax.
func TestWatchCheckConfigReadsAgentToken(t *testing.T) {
	dir := t.TempDir()
	section := "endpoints:\n  - {name: a, target: 127.0.0.1:1}\nagents:\n%s  hosts:\n    - {name: web-1, addr: 198.18.0.1}\n"
	for _, tc := range []struct{ name, tokenLine, want string }{
		{"missing file", "  token_file: " + filepath.Join(dir, "nope") + "\n", "agents.token_file: "},
		{"no token_file", "", "agents: no token_file"},
	} {
		config := filepath.Join(dir, "reach.yaml")
		writeConfig(t, config, fmt.Sprintf(section, tc.tokenLine))
		code, out, errs := run(t, "watch", "-c", config, "--check-config")
		if code != ExitFail || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s", tc.name, code, out, errs)
		}
	}
	writeConfig(t, filepath.Join(dir, "token"), "s3cret-s3cret-s3cret\n")
	writeConfig(t, filepath.Join(dir, "reach.yaml"), fmt.Sprintf(section, "  token_file: "+filepath.Join(dir, "token")+"\n"))
	if code, out, errs := run(t, "watch", "-c", filepath.Join(dir, "reach.yaml"), "--check-config"); code != ExitOK {
		t.Errorf("valid token file: exit %d\n%s%s", code, out, errs)
	}
}

// A dashboard beyond loopback without auth starts, with a warning that says
// how to protect it; on loopback, or with a token, there is none.
func TestWatchWarnsOfOpenDashboard(t *testing.T) {
	config := filepath.Join(t.TempDir(), "reach.yaml")
	writeConfig(t, config, "endpoints:\n  - {name: a, target: 127.0.0.1:1, interval: 1h}\n")
	for _, tc := range []struct {
		listen string
		env    string
		warn   bool
	}{
		{"0.0.0.0:0", "", true},
		{"0.0.0.0:0", "s3cret-s3cret-s3cret", false},
		{"127.0.0.1:0", "", false},
	} {
		t.Setenv("REACH_WATCH_TOKEN", tc.env)
		ctx, cancel := context.WithCancel(context.Background())
		errs := &testnet.Buffer{}
		done := make(chan int, 1)
		go func() {
			done <- Run(ctx, []string{"watch", "-c", config, "--store", filepath.Join(t.TempDir(), "reach.db"), "--listen", tc.listen},
				Stdio{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: errs})
		}()
		testnet.Eventually(t, 30*time.Second, "reach watch to start", func() bool { return strings.Contains(errs.String(), "dashboard http") })
		cancel()
		select {
		case code := <-done:
			if code != ExitOK {
				t.Errorf("%s: exit %d\n%s", tc.listen, code, errs)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: reach watch did not stop within 30s", tc.listen)
		}
		if got := strings.Contains(errs.String(), "REACH_WATCH_TOKEN or REACH_WATCH_BASIC_AUTH"); got != tc.warn {
			t.Errorf("--listen %s, token %q: warned %v, want %v:\n%s", tc.listen, tc.env, got, tc.warn, errs)
		}
	}
}

// reach watch's /metrics says which build serves them.
func TestWatchMetricsBuildInfo(t *testing.T) {
	a := testnet.Serve(t, testnet.HangUp)
	config := filepath.Join(t.TempDir(), "reach.yaml")
	writeConfig(t, config, "endpoints:\n  - {name: a, target: '"+a.String()+"', interval: 1s}\n")
	w := startWatch(t, config, "--no-doctor")
	resp, err := http.Get(w.url + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	in := version.Get()
	want := `reach_build_info{commit="` + in.Commit + `",date="` + in.Date + `",goversion="` + in.GoVersion +
		`",version="` + in.Version + `"} 1`
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s:\n%s", want, body)
	}
}
