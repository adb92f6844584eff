package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/web"
)

// 200 anonymous connections against reach watch run under a file limit of
// 128 change neither what an authenticated client is answered nor the
// state of a healthy endpoint: the caps keep the connections the server
// holds below what the limit leaves after the probes' reserve. Before
// them, the descriptors ran out: the dashboard stopped answering and the
// endpoint went up->down class=local-error.
func TestHostileConnectionFloodUnderLowFileLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no prlimit on PATH: install util-linux")
		}
		t.Skip("no prlimit on PATH (util-linux)")
	}
	bin := buildReach(t)
	healthy := testnet.Serve(t, testnet.HangUp)
	dir := t.TempDir()
	config := filepath.Join(dir, "reach.yaml")
	writeConfig(t, config, `alerts: {rise: 1, fall: 1}
endpoints:
  - {name: healthy, target: "`+healthy.String()+`", interval: 1s, timeout: 900ms}
`)
	const token = "hostile-test-token-0123456789"
	cmd := exec.Command(prlimit, "--nofile=128:128", bin, "watch", "-c", config,
		"--store", filepath.Join(dir, "reach.db"), "--listen", "127.0.0.1:0", "--no-doctor")
	cmd.Env = append(os.Environ(), "REACH_WATCH_TOKEN="+token)
	errs := &testnet.Buffer{}
	cmd.Stderr = errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("reach watch did not stop within 15s of SIGINT")
		}
	})
	var base string
	testnet.Eventually(t, 30*time.Second, "reach watch says where its dashboard is", func() bool {
		if m := dashboardLine.FindStringSubmatch(errs.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	})

	client := &http.Client{Timeout: 3 * time.Second}
	// state asks as the authenticated user; "" with the reason when it
	// got no answer.
	state := func() (string, error) {
		req, _ := http.NewRequest(http.MethodGet, base+"api/endpoints", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var list struct{ Endpoints []web.EndpointView }
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil ||
			len(list.Endpoints) != 1 {
			return "", fmt.Errorf("status %d, %d endpoints", resp.StatusCode, len(list.Endpoints))
		}
		return string(list.Endpoints[0].State), nil
	}
	testnet.Eventually(t, 10*time.Second, "the endpoint is up", func() bool {
		s, _ := state()
		return s == string(monitor.StateUp)
	})

	// The flood: 200 connections from 127.0.0.2, each sending half a
	// request and holding on; those the server closes are counted.
	stranger := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	host := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	var (
		mu                   sync.Mutex
		dialed, failed, shut int
		conns                []net.Conn
		wg                   sync.WaitGroup
	)
	for range 200 {
		c, err := stranger.Dial("tcp", host)
		if err != nil {
			failed++
			continue
		}
		dialed++
		conns = append(conns, c)
		c.Write([]byte("GET /api/endpoints HTTP/1.1\r\nHost: x\r\n"))
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(8 * time.Second))
			if _, err := io.Copy(io.Discard, c); err == nil || !os.IsTimeout(err) {
				mu.Lock()
				shut++
				mu.Unlock()
			}
		})
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})

	// Meanwhile the user asks every 250 ms, for 4 s (4 probe intervals).
	var answers []string
	for range 16 {
		s, err := state()
		if err != nil {
			s = "no answer: " + err.Error()
		}
		answers = append(answers, s)
		time.Sleep(250 * time.Millisecond)
	}
	mu.Lock()
	t.Logf("flood: %d connections made, %d failed to connect, %d closed by the server within 4s",
		dialed, failed, shut)
	mu.Unlock()
	for i, s := range answers {
		if s != string(monitor.StateUp) {
			t.Errorf("the user's request %d under the flood: %q, want the endpoint up", i, s)
		}
	}
	// No up->down was ever stored (batches are written every second).
	time.Sleep(1500 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodGet, base+"api/endpoints/local/healthy", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("endpoint detail after the flood: %v", err)
	}
	var d web.EndpointDetail
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range d.Transitions {
		if tr.To == monitor.StateDown {
			t.Errorf("the healthy endpoint went down under the flood: %+v", tr)
		}
	}
	metrics := get(t, client, base+"metrics", token)
	if !strings.Contains(metrics, `reach_http_connections_refused_total{reason="per_client"}`) {
		t.Errorf("/metrics lacks the refused connections' count:\n%s", grep(metrics, "reach_http"))
	}
	t.Logf("%s", grep(metrics, "reach_http"))
	if n := strings.Count(errs.String(), "refusing HTTP connections"); n != 1 {
		t.Errorf("the log says %d times that it refuses connections, want once (rate-limited):\n%s",
			n, errs.String())
	}
	wg.Wait()
}

func get(t *testing.T, c *http.Client, url, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// grep keeps the lines of s that contain sub.
func grep(s, sub string) string {
	var out bytes.Buffer
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out.WriteString(line)
		}
	}
	return out.String()
}
