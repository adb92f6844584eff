package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/reach-tools/reach/internal/testnet"
)

// The alert rules and the Grafana dashboard in deploy/ are checked against
// reach itself: promtool parses every expression and unit-tests the rules,
// and every metric they name must be one a real reach watch or agent
// exports.

// promtool finds promtool, or skips outside CI (scripts/test installs it:
// Debian's prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found: scripts/test installs Debian's prometheus package for it")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	return p
}

// queries returns every PromQL expression of deploy/prometheus/rules.yaml
// and deploy/grafana/reach.json, named by where it is.
func queries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile("../../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Record, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	for _, g := range rules.Groups {
		for i, r := range g.Rules {
			out[fmt.Sprintf("rules.yaml %s%s #%d", r.Alert, r.Record, i)] = r.Expr
		}
	}
	b, err = os.ReadFile("../../deploy/grafana/reach.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ RefID, Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("reach.json: %v", err)
	}
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Expr == "" {
				t.Errorf("dashboard panel %q, query %s: no expr", p.Title, q.RefID)
			}
			out["reach.json "+p.Title+" "+q.RefID] = q.Expr
		}
	}
	if len(out) < 20 {
		t.Fatalf("%d queries found; the files were not read as meant", len(out))
	}
	return out
}

// grafanaVars are the dashboard's variables, as promtool cannot read them.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

func TestDeployQueriesParse(t *testing.T) {
	bin := promtool(t)
	// Each expression as a recording rule: promtool check rules parses
	// them all (no server needed).
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rs []rule
	names := []string{}
	qs := queries(t)
	for name := range qs {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		rs = append(rs, rule{fmt.Sprintf("reach:query_%d", i), grafanaVars.Replace(qs[name])})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "deploy-queries", "rules": rs}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "queries.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the %d queries: %v\n%s", len(rs), err, out)
	}
	if out, err := exec.Command(bin, "check", "rules", "../../deploy/prometheus/rules.yaml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules rules.yaml: %v\n%s", err, out)
	}
	test := exec.Command(bin, "test", "rules", "rules_test.yaml")
	test.Dir = "../../deploy/prometheus"
	if out, err := test.CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("promtool test rules rules_test.yaml: %v\n%s", err, out)
	}
}

// metricName matches the metric names a query uses: reach's own, and the
// Go and process collectors' (string literals are removed first).
var (
	metricName = regexp.MustCompile(`\b(?:reach|process|go)_[a-z0-9_]+\b`)
	strLit     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	upMetric   = regexp.MustCompile(`\bup\s*\{`)
)

// notScraped are the metrics the deploy files use that the scraped processes
// below do not show (their series exist only with agents that registered
// themselves, with TLS endpoints, or once a connection was refused over the
// caps); each must still be registered by
// reach's code. pending ones may not be yet: another change adds them.
var notScraped = map[string]bool{
	"reach_hub_agent_stale":                false,
	"reach_http_connections_refused_total": false,
	"reach_hub_registered_agents":          false,
	"reach_tls_cert_expiry_seconds":        true, // TLS probes: being added
}

func TestDeployQueriesUseExportedMetrics(t *testing.T) {
	exported := scrapeReach(t)
	source := goSourceText(t)
	used := map[string][]string{}
	for where, q := range queries(t) {
		bare := strLit.ReplaceAllString(q, `""`)
		for _, m := range metricName.FindAllString(bare, -1) {
			used[m] = append(used[m], where)
		}
		if upMetric.MatchString(bare) {
			used["up"] = append(used["up"], where) // Prometheus' own, per target
		}
	}
	for m, where := range used {
		switch pending, listed := notScraped[m]; {
		case m == "up" || exported[m]:
		case listed && strings.Contains(source, `"`+m+`"`):
			t.Logf("%s: not scraped here, registered in the code", m)
		case listed && pending:
			t.Logf("%s: not exported yet (pending), used by %v", m, where)
		default:
			t.Errorf("%s is not a metric reach exports (used by %v)", m, where)
		}
	}
	for _, m := range []string{"reach_endpoint_up", "reach_probe_failures_total", "reach_agent_probe_success",
		"reach_store_healthy", "reach_probe_duration_seconds_bucket"} {
		if len(used[m]) == 0 {
			t.Errorf("the deploy files do not use %s", m)
		}
	}
}

// scrapeReach runs reach watch (an endpoint up, one down, an agents:
// section) and reach agent against it, in this process, and returns the
// names of every series their /metrics show.
func scrapeReach(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	token := "metrics-token-0123456789abcdef"
	writeConfig(t, filepath.Join(dir, "token"), token+"\n")
	up, down := testnet.Serve(t, testnet.Echo).String(), testnet.ClosedPort(t).String()
	config := filepath.Join(dir, "reach.yaml")
	writeConfig(t, config, fmt.Sprintf(`endpoints:
  - {name: up, target: %q, interval: 1s}
  - {name: down, target: %q, interval: 1s}
alerts: {fall: 1, rise: 1}
agents:
  token_file: %s
  interval: 1s
  hosts: [{name: a, addr: 127.0.0.1}]
  pairs:
    - {from: a, to: %q}
    - {from: a, to: %q}
`, up, down, filepath.Join(dir, "token"), up, down))
	ctx, cancel := context.WithCancel(context.Background())
	watchErr, agentErr := &testnet.Buffer{}, &testnet.Buffer{}
	done := make(chan int, 2)
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("reach watch or agent did not stop within 30s")
				return
			}
		}
	})
	go func() {
		done <- Run(ctx, []string{"watch", "-c", config, "--store", filepath.Join(dir, "reach.db"),
			"--listen", "127.0.0.1:0", "--log-format", "json"},
			Stdio{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: watchErr})
	}()
	hubURL := strings.TrimSuffix(awaitLogField(t, watchErr, "watch serving", "dashboard"), "/")
	go func() {
		done <- Run(ctx, []string{"agent", "--hub", hubURL, "--name", "a", "--listen", "127.0.0.1:0",
			"--token-file", filepath.Join(dir, "token"), "--report-every", "200ms", "--log-format", "json"},
			Stdio{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: agentErr})
	}()
	agentURL := "http://" + awaitLogField(t, agentErr, "agent serving", "listen")

	names := map[string]bool{}
	scrape := func(url, tok string) {
		req, _ := http.NewRequest("GET", url+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			if i := strings.IndexAny(line, "{ "); i > 0 {
				names[line[:i]] = true
			}
		}
	}
	// Wait until the series that appear only after probes fail and
	// succeed (and the agent has reported) are there.
	want := []string{"reach_probe_failures_total", "reach_probe_duration_seconds_bucket",
		"reach_agent_probe_failures_total", "reach_agent_probe_duration_seconds_bucket"}
	testnet.Eventually(t, 60*time.Second, "the metrics of failed and timed probes", func() bool {
		scrape(hubURL, "")
		scrape(agentURL, token)
		return !slices.ContainsFunc(want, func(m string) bool { return !names[m] })
	})
	return names
}

// awaitLogField waits for the JSON log record msg in buf and returns its
// field key.
func awaitLogField(t *testing.T, buf *testnet.Buffer, msg, key string) string {
	t.Helper()
	var val string
	testnet.Eventually(t, 30*time.Second, "the log record "+msg, func() bool {
		for line := range strings.Lines(buf.String()) {
			var r map[string]any
			if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == msg {
				val, _ = r[key].(string)
				return val != ""
			}
		}
		return false
	})
	return val
}

// goSourceText is the non-test Go source of the module, to find the
// metrics reach registers.
func goSourceText(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sb.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
