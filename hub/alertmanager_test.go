package hub

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
)

// startAlertmanager runs Debian's prometheus-alertmanager on loopback with
// a throw-away config and storage, clustering off, and returns its base
// URL; it is stopped (by pid) when the test ends.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		bin, err = exec.LookPath("alertmanager")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus-alertmanager is not installed; scripts/test installs it (apt-get install prometheus-alertmanager)")
		}
		t.Skip("prometheus-alertmanager is not installed (CI installs it)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	// One receiver that sends nowhere: the test reads the API.
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n  - name: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0", "--cluster.listen-address=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := &testnet.Buffer{}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("alertmanager's log:\n%s", log.String())
		}
	})
	// It says where it listens: 127.0.0.1:0 is a port it chose.
	addr := make(chan string, 1)
	listening := regexp.MustCompile(`msg="Listening on" address=(127\.0\.0\.1:\d+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("alertmanager did not say where it listens within 60 s:\n%s", log.String())
	}
	return ""
}

// amAlert is what GET /api/v2/alerts says of one alert.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, base string) []gettableAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v2/alerts: %s: %s", resp.Status, b)
	}
	var as []gettableAlert
	if err := json.Unmarshal(b, &as); err != nil {
		t.Fatalf("GET /api/v2/alerts: %v: %s", err, b)
	}
	return as
}

// A real Alertmanager receives reach's alerts: the one of a down endpoint,
// with the doctor's cause in its labels and findings in its annotations,
// naming what depends on it (whose own alert is held); it resolves when
// the endpoint comes back, and the dependent still down then alerts.
func TestAlertmanagerReceivesAndResolves(t *testing.T) {
	am := startAlertmanager(t)
	db, api := testnet.ClosedPort(t).String(), testnet.ClosedPort(t).String()
	cfg, err := monitor.ParseConfig("test.yaml", []byte(fmt.Sprintf(`
alerts:
  alertmanager: %s
  resend_every: 2s
  group_wait: 3s
  fall: 1
  rise: 1
endpoints:
  - {name: db, target: %q, interval: 1s, timeout: 500ms, labels: {team: data}}
  - {name: api, target: %q, interval: 1s, timeout: 500ms, depends_on: [db]}
`, am, db, api)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dash := "http://" + ln.Addr().String() + "/"
	w, err := NewWatch(t.Context(), cfg, WatchOptions{NoNetWatch: true, DashboardURL: dash})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, ln) }()
	defer func() { cancel(); <-done }()

	// wait polls Alertmanager until ok holds of its alerts, for at most a
	// minute (the doctor, the group wait and a loaded machine).
	wait := func(what string, ok func([]gettableAlert) bool) []gettableAlert {
		t.Helper()
		var as []gettableAlert
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if as = amAlerts(t, am); ok(as) {
				return as
			}
		}
		t.Fatalf("%s: never; Alertmanager holds %+v", what, as)
		return nil
	}
	find := func(as []gettableAlert, endpoint string) *gettableAlert {
		for i := range as {
			if as[i].Labels["endpoint"] == endpoint {
				return &as[i]
			}
		}
		return nil
	}
	as := wait("db's alert", func(as []gettableAlert) bool { return find(as, "db") != nil })
	a := find(as, "db")
	for k, want := range map[string]string{"alertname": "ReachEndpointDown", "endpoint": "db", "source": "local",
		"class": "refused", "team": "data"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], want, a.Labels)
		}
	}
	if a.Labels["cause"] == "" || a.Annotations["issue"] == "" || a.Annotations["evidence"] == "" || a.Annotations["fix"] == "" {
		t.Errorf("want the doctor's cause (label) and issue, evidence, fix (annotations): %+v", a)
	}
	if a.Annotations["dependents"] != "api" || !strings.Contains(a.Annotations["summary"], "and 1 dependent endpoint (api)") {
		t.Errorf("db's alert should name api, which depends on it: %v", a.Annotations)
	}
	if !strings.HasPrefix(a.GeneratorURL, dash) || !strings.HasSuffix(a.GeneratorURL, "#local/db") {
		t.Errorf("generatorURL %q, want the dashboard %s at #local/db", a.GeneratorURL, dash)
	}
	if a.Status.State != "active" {
		t.Errorf("state %q, want active", a.Status.State)
	}
	if find(as, "api") != nil {
		t.Errorf("api, which depends on db, alerted on its own: %+v", as)
	}
	// Re-posted while firing: its end keeps moving ahead, past Alertmanager's
	// own resolve_timeout's reach.
	first := a.EndsAt
	wait("db's alert re-posted", func(as []gettableAlert) bool {
		b := find(as, "db")
		return b != nil && b.EndsAt.After(first)
	})

	// db comes back: its alert resolves; api, still down, alerts now.
	up, err := net.Listen("tcp", db)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	as = wait("db resolved, api firing", func(as []gettableAlert) bool {
		return find(as, "db") == nil && find(as, "api") != nil
	})
	if b := find(as, "api"); b.Labels["alertname"] != "ReachEndpointDown" || b.Labels["class"] != "refused" {
		t.Errorf("api's alert: %+v", b)
	}
}
