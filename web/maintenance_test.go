package web

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/monitor"
)

func do(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Maintenance windows come and go through the API with the write token
// alone (not the dashboard's read token), and show in the list, with the
// endpoints they hold.
func TestMaintenanceAPI(t *testing.T) {
	cfg, err := monitor.ParseConfig("t.yaml", []byte(`
alerts:
  maintenance:
    - {name: nightly, days: [sat], at: "02:00", for: 2h, zone: Europe/Berlin}
endpoints:
  - {name: db, target: "127.0.0.1:5432"}
`))
	if err != nil {
		t.Fatal(err)
	}
	al := monitor.NewAlerting(cfg, nil)
	srv, _, _ := newTestServer(t, Options{Token: "read-token-123456", WriteToken: "write-token-654321", Alerting: al})
	read := []string{"Authorization", "Bearer read-token-123456"}
	write := []string{"Authorization", "Bearer write-token-654321"}
	body := `{"endpoints": ["db"], "for": "1h", "reason": "postgres upgrade"}`

	for _, tc := range []struct {
		name string
		hdr  []string
		code int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"the read token", read, http.StatusUnauthorized},
		{"the write token in the query", []string{"X-Nothing", "x"}, http.StatusUnauthorized},
	} {
		url := srv.URL + "/api/maintenance"
		if tc.name == "the write token in the query" {
			url += "?token=write-token-654321"
		}
		if code, msg := do(t, http.MethodPost, url, body, tc.hdr...); code != tc.code {
			t.Errorf("POST with %s: %d %s, want %d", tc.name, code, msg, tc.code)
		}
	}
	if code, msg := do(t, http.MethodPost, srv.URL+"/api/endpoints", body, write...); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/endpoints with the write token: %d %s, want 405", code, msg)
	}
	code, msg := do(t, http.MethodPost, srv.URL+"/api/maintenance", `{"for": "-1h"}`, write...)
	if code != http.StatusBadRequest || !strings.Contains(msg, `for "-1h"`) {
		t.Errorf("a negative window: %d %s, want 400 naming it", code, msg)
	}
	code, msg = do(t, http.MethodPost, srv.URL+"/api/maintenance", `{"for": "2d"}`, write...)
	if code != http.StatusBadRequest || !strings.Contains(msg, "48h") {
		t.Errorf("a window of 2d: %d %s, want 400 saying to write days in hours", code, msg)
	}
	code, msg = do(t, http.MethodPost, srv.URL+"/api/maintenance", `{"endpoints": ["db", "dbb"], "for": "1h"}`, write...)
	if code != http.StatusBadRequest || !strings.Contains(msg, `"dbb"`) || !strings.Contains(msg, "endpoints are db") {
		t.Errorf("a window for an endpoint that does not exist: %d %s, want 400 naming it and the endpoints", code, msg)
	}
	code, msg = do(t, http.MethodPost, srv.URL+"/api/maintenance", body, write...)
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, msg)
	}
	var w monitor.Window
	if err := json.Unmarshal([]byte(msg), &w); err != nil || w.ID == "" || w.Reason != "postgres upgrade" ||
		w.End.Sub(w.Start) != time.Hour {
		t.Fatalf("created %s (%v)", msg, err)
	}

	code, msg = get(t, srv.URL+"/api/maintenance", read...)
	var ws []monitor.WindowView
	if err := json.Unmarshal([]byte(msg), &ws); code != http.StatusOK || err != nil || len(ws) != 2 {
		t.Fatalf("GET: %d %s (%v)", code, msg, err)
	}
	if ws[0].ID != "nightly" || ws[0].Zone != "Europe/Berlin" || ws[0].Next.IsZero() || ws[0].From != monitor.WindowConfig {
		t.Errorf("config window %+v", ws[0])
	}
	if ws[1].ID != w.ID || !ws[1].Active || ws[1].From != monitor.WindowAPI {
		t.Errorf("api window %+v, want active", ws[1])
	}
	_, msg = get(t, srv.URL+"/api/endpoints", read...)
	if !strings.Contains(msg, `"held":"maintenance `+w.ID+`"`) {
		t.Errorf("the endpoint list does not say db's alerts are held: %s", msg)
	}

	if code, msg := do(t, http.MethodDelete, srv.URL+"/api/maintenance/nightly", "", write...); code != http.StatusNotFound ||
		!strings.Contains(msg, "config file") {
		t.Errorf("DELETE a config window: %d %s, want 404 saying it is in the config file", code, msg)
	}
	if code, msg := do(t, http.MethodDelete, srv.URL+"/api/maintenance/"+w.ID, "", write...); code != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", code, msg)
	}
	_, msg = get(t, srv.URL+"/api/maintenance", read...)
	if strings.Contains(msg, w.ID) {
		t.Errorf("still listed after DELETE: %s", msg)
	}
}

func TestMaintenanceWritesOff(t *testing.T) {
	cfg := &monitor.Config{Endpoints: []monitor.Endpoint{{Name: "db"}}}
	srv, _, _ := newTestServer(t, Options{Alerting: monitor.NewAlerting(cfg, nil)})
	code, msg := do(t, http.MethodPost, srv.URL+"/api/maintenance", `{"for": "1h"}`, "Authorization", "Bearer x")
	if code != http.StatusForbidden || !strings.Contains(msg, "REACH_WATCH_WRITE_TOKEN") {
		t.Errorf("POST without a write token configured: %d %s, want 403 saying how to turn writes on", code, msg)
	}
}

// With the windows in the store, a store that fails answers 503 saying so,
// not "bad window"; a window posted before lives on in the store.
func TestMaintenanceStoreFails(t *testing.T) {
	cfg := &monitor.Config{Endpoints: []monitor.Endpoint{{Name: "db"}}}
	store, err := monitor.OpenStore(t.Context(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	al := monitor.NewAlerting(cfg, nil)
	if err := al.UseStore(t.Context(), store, nil); err != nil {
		t.Fatal(err)
	}
	srv, _, _ := newTestServer(t, Options{WriteToken: "write-token-654321", Alerting: al})
	write := []string{"Authorization", "Bearer write-token-654321"}
	code, msg := do(t, http.MethodPost, srv.URL+"/api/maintenance", `{"for": "1h"}`, write...)
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, msg)
	}
	var w monitor.Window
	if err := json.Unmarshal([]byte(msg), &w); err != nil {
		t.Fatal(err)
	}
	if ws, err := store.Windows(t.Context(), time.Now()); err != nil || len(ws) != 1 || ws[0].ID != w.ID {
		t.Fatalf("the store holds %+v, %v; want %s", ws, err, w.ID)
	}
	store.Close()
	code, msg = do(t, http.MethodPost, srv.URL+"/api/maintenance", `{"for": "1h"}`, write...)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "could not be kept") {
		t.Errorf("POST on a closed store: %d %s, want 503", code, msg)
	}
	code, msg = do(t, http.MethodDelete, srv.URL+"/api/maintenance/"+w.ID, "", write...)
	if code != http.StatusServiceUnavailable {
		t.Errorf("DELETE on a closed store: %d %s, want 503", code, msg)
	}
}
