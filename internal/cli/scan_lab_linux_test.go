package cli

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/scan"
)

// buildReach builds cmd/reach; scans run it inside a namespace, so its
// sockets never touch this host's own loopback.
func buildReach(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "reach")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/reach").CombinedOutput(); err != nil {
		t.Fatalf("building reach: %v\n%s", err, out)
	}
	return bin
}

func reachIn(t *testing.T, bin string, h *netlab.Host, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.Name(), bin}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestScanOutputInNamespace(t *testing.T) {
	p := netlab.New(t).Pair()
	bin := buildReach(t)
	c, s, saddr := p.Client, p.Server, p.ServerAddr
	ln := s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0"))
	open := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "2", "-j", "DROP")
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "3", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	dead := p.Lab.Unowned(t, saddr)
	ports := "1-3," + open

	t.Run("text", func(t *testing.T) {
		out, errs, code := reachIn(t, bin, c, "", "scan", saddr.String(), "-p", ports, "--reason", "--max-retries", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, want := range []string{
			"reach scan report for " + saddr.String(),
			"PORT", "STATE", "SERVICE", "REASON",
			"1/tcp", "closed", "conn-refused",
			"2/tcp", "filtered", "no-response",
			"3/tcp", "admin-prohibited from " + saddr.String(),
			open + "/tcp", "open", "syn-ack",
			"Scanned 4 ports on 1 host (1 up, 0 unreachable)",
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("json and -iL stdin", func(t *testing.T) {
		out, errs, code := reachIn(t, bin, c, saddr.String()+"\n# a comment\n"+dead.String()+"\n", "scan", "-iL", "-", "-p", ports, "--json", "--all-states")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		validLines(t, "reach.scan.v1.json", out, -1) // port, host and summary records
		states := map[string]string{}
		var hosts []scan.Host
		var summary map[string]any
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("not JSON: %q: %v", sc.Text(), err)
			}
			switch line["type"] {
			case "port":
				states[strconv.Itoa(int(line["port"].(float64)))] = line["state"].(string) + "/" + line["reason"].(string)
			case "host":
				var h scan.Host
				json.Unmarshal(sc.Bytes(), &h)
				hosts = append(hosts, h)
			case "summary":
				summary = line
			}
		}
		want := map[string]string{"1": "closed/conn-refused", "2": "filtered/no-response", "3": "filtered/admin-prohibited", open: "open/syn-ack"}
		if len(states) != len(want) {
			t.Fatalf("port lines %v, want %v", states, want)
		}
		for p, st := range want {
			if states[p] != st {
				t.Fatalf("port %s: %q, want %q (all: %v)", p, states[p], st, states)
			}
		}
		byAddr := map[string]scan.HostState{}
		for _, h := range hosts {
			byAddr[h.Addr.String()] = h.State
		}
		if byAddr[saddr.String()] != scan.HostUp || byAddr[dead.String()] != scan.HostUnreachable || len(hosts) != 2 {
			t.Fatalf("host lines %v", byAddr)
		}
		if summary == nil || summary["hosts"].(float64) != 2 || summary["hosts_up"].(float64) != 1 {
			t.Fatalf("summary %v", summary)
		}
	})

	t.Run("interrupt prints what was found", func(t *testing.T) {
		var extra []string
		for range 4 {
			extra = append(extra, strconv.Itoa(s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0")).Addr().(*net.TCPAddr).Port))
		}
		// 205 ports at 40 a second take 5 s; the first of 5 open ports
		// shows up long before that.
		cmd := exec.Command("ip", "netns", "exec", c.Name(), bin, "scan", saddr.String(), "-p", "1000-1200,"+strings.Join(extra, ","), "--rate", "40", "--json")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), `"state":"open"`) {
				cmd.Process.Signal(os.Interrupt)
				break
			}
		}
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		err = cmd.Wait()
		out := strings.Join(lines, "\n")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitFail {
			t.Fatalf("exit: %v, want status 1; stderr %q\n%s", err, errb.String(), out)
		}
		if !strings.Contains(errb.String(), "scan interrupted after") || !strings.Contains(out, `"canceled":true`) || !strings.Contains(out, `"state":"open"`) {
			t.Fatalf("stderr %q, stdout:\n%s", errb.String(), out)
		}
	})

	t.Run("dead hosts are one line", func(t *testing.T) {
		out, errs, code := reachIn(t, bin, c, "", "scan", dead.String(), "-p", "1-100")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if !strings.Contains(out, "reach scan report for "+dead.String()+": host-unreachable (ICMP host-unreachable from") ||
			strings.Contains(out, "filtered") || !strings.Contains(out, "(0 up, 1 unreachable)") {
			t.Fatalf("dead host output:\n%s", out)
		}
	})
}
