package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/internal/testnet"
)

// Each level drops what is below it; json writes one object a line.
func TestLogFlagsLevelsAndFormats(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  []string // the messages kept, of debug, info, warn, error
	}{
		{"debug", []string{"d", "i", "w", "e"}},
		{"info", []string{"i", "w", "e"}},
		{"warn", []string{"w", "e"}},
		{"WARNING", []string{"w", "e"}},
		{"error", []string{"e"}},
	} {
		for _, format := range []string{"text", "json"} {
			var buf bytes.Buffer
			log, err := (&logFlags{level: tc.level, format: format}).logger(&buf)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.level, format, err)
			}
			log.Debug("d")
			log.Info("i", "k", 1)
			log.Warn("w")
			log.Error("e")
			var got []string
			for line := range strings.Lines(buf.String()) {
				if format == "text" {
					_, msg, _ := strings.Cut(line, "msg=")
					got = append(got, strings.Fields(msg)[0])
					continue
				}
				var rec struct{ Level, Msg string }
				if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" {
					t.Fatalf("%s json: line %q is not a log record: %v", tc.level, line, err)
				}
				got = append(got, rec.Msg)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("--log-level %s --log-format %s: logged %v, want %v", tc.level, format, got, tc.want)
			}
		}
	}
}

// Every long-running command takes both flags and refuses a bad value as a
// usage error naming the flag, before it does anything.
func TestLogFlagsOnLongRunningCommands(t *testing.T) {
	cmds := [][]string{
		{"watch", "-c", filepath.Join(t.TempDir(), "none.yaml")},
		{"agent", "--hub", "http://127.0.0.1:1"},
		{"serve", "--listen", "127.0.0.1:0"},
		{"fault", "refuse", "--port", "1", "--for", "1s"},
	}
	for _, args := range cmds {
		for _, bad := range [][]string{{"--log-level", "loud"}, {"--log-format", "xml"}} {
			code, out, errs := run(t, append(append([]string{}, args...), bad...)...)
			if code != ExitUsage || out != "" || !strings.Contains(errs, bad[0]+" \""+bad[1]+"\"") {
				t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want 2 naming %s", args, bad, code, out, errs, bad[0])
			}
		}
	}
}

// reach agent's log through --log-format json is JSON Lines, filtered by
// --log-level: the agent below starts (info), warns that it has no
// --advertise (warn), and ends when the hub refuses its token.
func TestAgentLogFlags(t *testing.T) {
	t.Setenv("REACH_TOKEN", "")
	hubURL, tokenFile := refusingHub(t)
	for _, tc := range []struct {
		level      string
		info, warn bool
	}{
		{"info", true, true},
		{"warn", false, true},
		{"error", false, false},
	} {
		code, _, errs := run(t, "agent", "--hub", hubURL, "--token-file", tokenFile, "--name", "a",
			"--listen", "0.0.0.0:0", "--log-format", "json", "--log-level", tc.level)
		if code != ExitFail {
			t.Fatalf("exit %d, want 1 (the hub refuses the token):\n%s", code, errs)
		}
		recs := logRecords(t, errs)
		has := func(level, msg string) bool {
			for _, r := range recs {
				if r["level"] == level && strings.Contains(r["msg"].(string), msg) {
					return true
				}
			}
			return false
		}
		if got := has("INFO", "agent serving"); got != tc.info {
			t.Errorf("--log-level %s: info record %v, want %v:\n%s", tc.level, got, tc.info, errs)
		}
		if got := has("WARN", "no --advertise"); got != tc.warn {
			t.Errorf("--log-level %s: warning %v, want %v:\n%s", tc.level, got, tc.warn, errs)
		}
	}
}

// reach watch --log-format json: every line it writes to stderr while it
// runs is a JSON log record, its start among them (with the dashboard's URL).
func TestWatchLogFormatJSON(t *testing.T) {
	config := filepath.Join(t.TempDir(), "reach.yaml")
	writeConfig(t, config, "endpoints:\n  - {name: a, target: 127.0.0.1:1, interval: 1h}\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := &testnet.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"watch", "-c", config, "--store", filepath.Join(t.TempDir(), "reach.db"),
			"--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"},
			Stdio{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: errs})
	}()
	testnet.Eventually(t, 30*time.Second, "reach watch to log its start", func() bool {
		return strings.Contains(errs.String(), `"msg":"watch serving"`)
	})
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reach watch did not stop within 30s")
	}
	recs := logRecords(t, errs.String())
	for _, r := range recs {
		if r["msg"] == "watch serving" && strings.HasPrefix(r["dashboard"].(string), "http://127.0.0.1:") {
			return
		}
	}
	t.Errorf("no start record with the dashboard's URL:\n%s", errs)
}

// logRecords parses stderr as JSON log records, up to the "reach: ..." line
// Run prints for an error; any other line fails the test.
func logRecords(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "reach: ") {
			break
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q is not JSON: %v\n%s", line, err, stderr)
		}
		if _, ok := r["level"].(string); !ok {
			t.Fatalf("log line %q has no level", line)
		}
		if _, ok := r["msg"].(string); !ok {
			t.Fatalf("log line %q has no msg", line)
		}
		recs = append(recs, r)
	}
	return recs
}

// refusingHub is a hub that knows host a and refuses the token the returned
// file holds.
func refusingHub(t *testing.T) (url, tokenFile string) {
	t.Helper()
	h, err := hub.New(hub.Config{Token: "right", Hosts: []hub.HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	tokenFile = filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(tokenFile, []byte("wrong-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, tokenFile
}
