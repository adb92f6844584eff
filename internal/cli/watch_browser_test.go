package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/web"
)

// chromium finds a headless-capable browser; in CI its absence fails the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH; scripts/test installs Debian's chromium")
	}
	t.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// artifactDir is where screenshots go: $REACH_ARTIFACTS, or a temp dir.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("REACH_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// The whole of reach watch in a real headless Chromium: the dashboard shows an
// endpoint up, the test stops its server, and without a reload the page shows
// it down with the doctor's cause and findings; the webhook got the same.
func TestWatchDashboardInBrowser(t *testing.T) {
	browser := chromium(t)
	steady, victim := testnet.Serve(t, testnet.HangUp), testnet.Listen(t)
	testnet.ServeOn(t, victim, testnet.HangUp)
	alerts := make(chan monitor.Alert, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a monitor.Alert
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &a); err != nil {
			t.Errorf("webhook body %s: %v", b, err)
		}
		alerts <- a
	}))
	defer hook.Close()
	config := filepath.Join(t.TempDir(), "reach.yaml")
	writeConfig(t, config, `alerts: {webhook: "`+hook.URL+`", rise: 1, fall: 1}
endpoints:
  - {name: steady, target: "`+steady.String()+`", interval: 1s, labels: {team: ops}}
  - {name: victim, target: "`+victim.Addr().String()+`", interval: 1s}
`)
	w := startWatch(t, config, "--doctor-timeout", "500ms")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1400, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	up := chromedp.CSS(`#endpoints tr[data-key="local/victim"][data-state="up"]`)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(w.url),
		chromedp.WaitVisible(up),
		chromedp.Click(up),
		chromedp.WaitVisible(chromedp.CSS(`#detail #plot svg`)),
	); err != nil {
		t.Fatalf("dashboard never showed victim up: %v\n%s", err, w.errs.String())
	}

	victim.Close() // refused from now on
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#endpoints tr[data-key="local/victim"][data-state="down"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#d-findings tbody tr`)),
	); err != nil {
		t.Fatalf("dashboard never showed victim down with findings: %v\n%s", err, w.errs.String())
	}
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	verdict, firstIssue, live := text(`#d-verdict`), text(`#d-findings tbody tr td`), text(`#live`)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 means PNG
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), "watch-dashboard-down.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	// The page shows what the API has: the doctor's cause from the moment it went down.
	resp, err := http.Get(w.url + "api/endpoints/local/victim")
	if err != nil {
		t.Fatal(err)
	}
	var d web.EndpointDetail
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil || d.Down == nil || d.Down.Diagnosis == nil {
		t.Fatalf("API detail %+v, %v", d, err)
	}
	cause := d.Down.Diagnosis.Cause
	if cause == "" || !strings.Contains(verdict, "Cause: "+cause) || firstIssue == "" || live != "live" {
		t.Errorf("page verdict %q, first issue %q, live %q; API cause %q", verdict, firstIssue, live, cause)
	}
	if cause != "not-listening" && cause != "wrong-port" {
		t.Errorf("doctor's cause for a closed loopback port is %q; want not-listening (or wrong-port, with a listener nearby)", cause)
	}

	// The webhook got the same cause and findings.
	deadline := time.After(30 * time.Second)
	for {
		select {
		case a := <-alerts:
			if a.Endpoint != "victim" || a.State != monitor.StateDown {
				continue
			}
			if a.Cause != cause || len(a.Findings) == 0 || a.Class != "refused" {
				t.Errorf("webhook alert %+v", a)
			}
			return
		case <-deadline:
			t.Fatal("no webhook for victim going down")
		}
	}
}
