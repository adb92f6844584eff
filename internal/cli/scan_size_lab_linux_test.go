package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// An interrupted scan of many hosts names the hosts it decided no port of
// in one line (text) or one record (JSON), not a block each: an
// interrupted /12 printed 762,107 "Host state unknown" blocks. The scan
// runs on a namespace's own loopback: 1,024 addresses of 127.0.0.0/22, ten
// ports each, at 200 connects a second, interrupted after 1.5 s.
var unscannedLine = regexp.MustCompile(
	`^No port decided before the scan ended: ([\d,]+) hosts?(?: \([\d,]+ found up\))?: \S`)

func TestHostileInterruptedScanOneLine(t *testing.T) {
	c := netlab.New(t).Pair().Client
	bin := buildReach(t)
	interrupted := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", c.Name(), bin, "scan", "127.0.0.0/22",
			"-p", "1-10", "--rate", "200"}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitFail {
				t.Fatalf("exit: %v, want status 1; stderr %q", err, errb.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatal("reach scan still running 20 s after the interrupt")
		}
		if !strings.Contains(errb.String(), "scan interrupted after") {
			t.Fatalf("stderr %q", errb.String())
		}
		return out.String()
	}

	t.Run("text", func(t *testing.T) {
		out := interrupted(t)
		lines := strings.Split(out, "\n")
		var unscanned []string
		blocks := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "No port decided before the scan ended: ") {
				unscanned = append(unscanned, l)
			}
			if strings.HasPrefix(l, "reach scan report for ") {
				blocks++
			}
		}
		if len(unscanned) != 1 || strings.Contains(out, "Host state unknown") {
			t.Fatalf("want one line for the unscanned hosts and no 'Host state unknown':\n%s", out)
		}
		// "N hosts: RANGES", or "N hosts (K found up): RANGES" when discovery
		// judged some before the interrupt.
		m := unscannedLine.FindStringSubmatch(unscanned[0])
		if m == nil {
			t.Fatalf("unscanned line %q does not match %v", unscanned[0], unscannedLine)
		}
		n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
		// Every host is either a block (something was decided) or in the line.
		if n+blocks != 1024 || n < 512 {
			t.Errorf("%d hosts unscanned + %d host blocks, want 1024 in all, most unscanned\n%s", n, blocks, unscanned[0])
		}
		if len(unscanned[0]) > 400 {
			t.Errorf("the unscanned line is %d bytes long, want it short: %s", len(unscanned[0]), unscanned[0])
		}
		t.Logf("%d host blocks; %s", blocks, unscanned[0])
	})

	t.Run("json", func(t *testing.T) {
		out := interrupted(t, "--json")
		validLines(t, "reach.scan.v1.json", out, -1) // the unscanned record too
		records, hosts := 0, 0
		var rec struct {
			Type   string   `json:"type"`
			Hosts  int      `json:"hosts"`
			Ranges []string `json:"ranges"`
			More   int      `json:"more_ranges"`
			State  string   `json:"state"`
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var line struct {
				Type  string `json:"type"`
				State string `json:"state"`
			}
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("not JSON: %q", l)
			}
			switch {
			case line.Type == "unscanned":
				records++
				json.Unmarshal([]byte(l), &rec)
			case line.Type == "host":
				hosts++
			}
		}
		if records != 1 || rec.Hosts < 512 || len(rec.Ranges) == 0 || hosts+rec.Hosts != 1024 {
			t.Fatalf("%d unscanned records (hosts %d, %d ranges), %d host records, want 1024 hosts in all:\n%.2000s",
				records, rec.Hosts, len(rec.Ranges), hosts, out)
		}
		t.Logf("one unscanned record: %d hosts in %d ranges (+%d more), %d host records", rec.Hosts, len(rec.Ranges), rec.More, hosts)
	})
}
