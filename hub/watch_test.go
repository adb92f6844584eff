package hub

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// TestReloadForgetsRemovedPairs: a pair removed from the agents: section
// by a reload, or by a restart, leaves the dashboard and /metrics; it stayed
// there, down for ever, keeping reach_endpoint_up at 0.
func TestReloadForgetsRemovedPairs(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(agents string) *monitor.Config {
		t.Helper()
		cfg, err := monitor.ParseConfig("reach.yaml", []byte("endpoints:\n  - name: api\n    target: 127.0.0.1:8080\n"+agents))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	withPairs := func(pairs string) *monitor.Config {
		return config(`agents:
  token_file: ` + tok + `
  hosts:
    - {name: web-1, addr: 127.0.0.1}
    - {name: web-2, addr: 127.0.0.2}
    - {name: db-1, addr: 127.0.0.3}
  pairs:
` + pairs)
	}
	both := withPairs("    - {from: web-1, to: \"db-1:5432\"}\n    - {from: web-2, to: \"db-1:5432\"}\n")
	store, err := monitor.OpenStore(t.Context(), filepath.Join(dir, "reach.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	w, err := NewWatch(t.Context(), both, WatchOptions{Monitor: monitor.Options{Store: store}, NoDoctor: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Monitor.Run(ctx) }()
	lists, _ := w.Hub.cfg.ProbeLists()
	for src, pl := range lists {
		for _, tg := range pl.Targets {
			w.Monitor.Observe(t.Context(), src, monitor.Endpoint{Name: tg.ID, Expect: monitor.ExpectOpen},
				time.Now(), probe.Result{Class: probe.Refused})
		}
	}
	shown := func(m *monitor.Monitor) (out []string) {
		for _, st := range m.Statuses() {
			out = append(out, st.Source+"/"+st.Endpoint)
		}
		return out
	}
	if got := shown(w.Monitor); len(got) != 3 {
		t.Fatalf("before the reload: %v, want api and two pairs", got)
	}
	if err := w.Reload(withPairs("    - {from: web-1, to: \"db-1:5432\"}\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := shown(w.Monitor), []string{"local/api", "web-1/db-1:5432"}; !slices.Equal(got, want) {
		t.Errorf("after the reload: %v, want %v", got, want)
	}
	// A bad agents: section is refused; the hub keeps what it runs.
	if err := w.Reload(withPairs("    - {from: nobody, to: \"db-1:5432\"}\n")); err == nil ||
		!strings.Contains(err.Error(), `from "nobody" is not in hosts`) {
		t.Errorf("reload with a bad pair: %v, want it refused", err)
	}
	if got := w.Hub.Matrix().Sources; len(got) != 3 {
		t.Errorf("after a refused reload the hub has sources %v", got)
	}
	cancel() // the states go to the store
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A restart without an agents: section restores none of the pairs.
	again, err := NewWatch(t.Context(), config(""), WatchOptions{Monitor: monitor.Options{Store: store}, NoDoctor: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := shown(again.Monitor), []string{"local/api"}; !slices.Equal(got, want) {
		t.Errorf("restarted without agents: %v, want %v", got, want)
	}
	if again.Hub != nil {
		t.Error("a hub without an agents: section")
	}
	// An agents: section added by a reload needs a restart, and says so.
	if err := again.Reload(both); err == nil || !strings.Contains(err.Error(), "restart reach watch to start the hub") {
		t.Errorf("reload adding an agents: section: %v, want it to say a restart is needed", err)
	}
}

// Run serves the dashboard, the hub's protocol (behind the agents' token)
// and its matrix (behind the dashboard's auth) on one listener, and ends
// with its context.
func TestWatchServesHubAndDashboard(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := monitor.ParseConfig("reach.yaml", []byte(`agents:
  token_file: `+tok+`
  hosts: [{name: a, addr: 127.0.0.1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	opt := WatchOptions{NoDoctor: true}
	opt.Dashboard.Token = "dash"
	w, err := NewWatch(t.Context(), cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	status := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", http.StatusOK},
		{"/agent/v1/targets?agent=a", testToken, http.StatusOK},
		{"/agent/v1/targets?agent=a", "dash", http.StatusUnauthorized},
		{"/agents/matrix.json", "dash", http.StatusOK},
		{"/agents/matrix.json", testToken, http.StatusUnauthorized},
		{"/api/endpoints", "", http.StatusUnauthorized},
	} {
		if got := status(tc.path, tc.token); got != tc.want {
			t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.token, got, tc.want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end with its context")
	}
}

// reach watch keeps the API's maintenance windows in its store: a restart
// (a new Watch on the store opened again) lists them and holds the alerts.
func TestWatchWindowsOutliveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reach.db")
	cfg, err := monitor.ParseConfig("t.yaml", []byte("endpoints:\n  - {name: api, target: \"127.0.0.1:1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	open := func() *Watch {
		store, err := monitor.OpenStore(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		w, err := NewWatch(t.Context(), cfg, WatchOptions{Monitor: monitor.Options{Store: store}, NoDoctor: true, NoNetWatch: true})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	now := time.Now()
	win, err := open().Alerting.AddWindow(monitor.Window{Endpoints: []string{"api"}, Start: now, End: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w := open()
	if ws := w.Alerting.Windows(); len(ws) != 1 || ws[0].ID != win.ID || !ws[0].Active {
		t.Fatalf("after a restart: %+v, want %s active", ws, win.ID)
	}
	if h := w.Alerting.Held(monitor.LocalSource, "api"); h != "maintenance "+win.ID {
		t.Errorf("after a restart api is held by %q", h)
	}
}
