package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/probe"
)

// The matrix in reach watch, in a real headless Chromium behind the
// dashboard's token and its Content-Security-Policy: a pair reported refused
// turns red without a reload, and its cell leads to the pair's history.
func TestAgentMatrixInBrowser(t *testing.T) {
	browser := chromium(t)
	dir := t.TempDir()
	writeConfig(t, filepath.Join(dir, "token"), "agent-token-0123456789\n")
	config := filepath.Join(dir, "reach.yaml")
	writeConfig(t, config, `agents:
  token_file: `+filepath.Join(dir, "token")+`
  interval: 1s
  hosts:
    - {name: web, addr: 127.0.0.1}
    - {name: db, addr: 127.0.0.2}
  groups:
    - {name: all, hosts: [web, db], ports: [5432]}
`)
	t.Setenv("REACH_WATCH_TOKEN", "dash token 0123456789")
	w := startWatch(t, config, "--no-doctor")
	report := func(source, target string, class probe.Class) {
		t.Helper()
		b, _ := json.Marshal(agent.Batch{Agent: source, Results: []agent.Result{{Target: target, Addr: netip.MustParseAddrPort("127.0.0.2:5432"), Class: class, Time: time.Now()}}})
		req, _ := http.NewRequest(http.MethodPost, w.url+"agent/v1/results", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer agent-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("report: %s", resp.Status)
		}
	}
	report("web", "db:5432", probe.Open)
	report("db", "web:5432", probe.Open)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1000, 600))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	// The dashboard of a hub, opened with ?token=, runs (its assets load
	// without the token) and links to the matrix, keeping the token.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(w.url+"?token=dash+token+0123456789"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
		chromedp.WaitVisible(chromedp.CSS(`#matrix-link`)),
		chromedp.Click(chromedp.CSS(`#matrix-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#matrix`)),
	); err != nil {
		t.Fatalf("dashboard with ?token= and its link to the matrix: %v\n%s", err, w.errs.String())
	}
	cell := `td[data-source="web"][data-target="db:5432"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(w.url+"agents/?token=dash+token+0123456789"),
		chromedp.WaitVisible(chromedp.CSS(cell+`[data-class="open"]`)),
	); err != nil {
		t.Fatalf("matrix never showed web->db open: %v\n%s", err, w.errs.String())
	}
	report("web", "db:5432", probe.Refused)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(cell+`[data-class="refused"]`))); err != nil {
		t.Fatalf("matrix did not turn web->db refused without a reload: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), "agent-matrix.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(cell+" a")),
		chromedp.WaitVisible(chromedp.CSS(`h1#pair`)),
	); err != nil {
		t.Fatalf("cell link: %v", err)
	}
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`h1#pair`)))
	if err != nil {
		t.Fatal(err)
	}
	if h1 != "web → db:5432" {
		t.Errorf("cell led to %q, want the pair page web → db:5432", h1)
	}
}
