package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/scan"
)

func TestScanUsage(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"scan"}, "no targets"},
		{[]string{"scan", "198.18.0.1:80"}, "a scan target has no port; give ports with -p"},
		{[]string{"scan", "198.18.0.1-0"}, "range runs backwards"},
		{[]string{"scan", "198.18.0.1", "-p", "0"}, "-p: \"0\": port out of range 1-65535"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--top", "5"}, "either -p or --top"},
		{[]string{"scan", "198.18.0.1", "--top", "100000"}, "reach's list has"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--exclude-ports", "1-100"}, "every port is excluded"},
		{[]string{"scan", "198.18.0.0/30", "-p", "22", "--exclude", "198.18.0.0/29"}, "every target is excluded"},
		{[]string{"scan", "198.18.0.1", "--exclude", "198.18.0.300"}, "--exclude:"},
		{[]string{"scan", "198.18.0.1", "--exclude", "198.18.0.2,db.internal"}, "a name cannot be excluded: db.internal is not resolved for exclusions, so it would exclude nothing; give its address, a CIDR or a range"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--rate", "-1"}, "--rate -1"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--rate", "NaN"}, "--rate NaN: give a positive number"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--rate", "Inf"}, "--rate +Inf: give a positive number"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--max-retries", "-2"}, "--max-retries -2: give 0 to 254"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--max-retries", "255"}, "--max-retries 255: give 0 to 254"},
		{[]string{"scan", "198.18.0.1", "-p", "22", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"scan", "198.18.0.1", "--no-such-flag"}, "unknown flag"},
		{[]string{"scan", "198.18.0.1", "--top", "0"}, "--top 0: give a positive number"},
		{[]string{"scan", "fe80::1%no-such-if0", "-p", "22"}, `no network interface "no-such-if0"`},
		{[]string{"scan", "fe80::1", "-p", "22"}, "fe80::1 is link-local: give its interface as a zone"},
		{[]string{"scan", "198.0.0.0/8", "-p", "22"}, "holds more than 1048576 addresses"},
		{[]string{"scan", "-iL", filepath.Join(t.TempDir(), "missing")}, "reading targets"},
		{[]string{"scan", "-iL", empty, "-p", "22"}, "-iL " + empty + ": no targets in it; give one or more per line"},
		{[]string{"scan", "-iL", "-", "-p", "22"}, "-iL standard input: no targets in it; give one or more per line"},
	}
	// The context is canceled before the command runs: a case that wrongly
	// passes validation fails without sending a packet from this namespace.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var errb strings.Builder
			code := Run(ctx, tt.args, Stdio{In: strings.NewReader(""), Out: io.Discard, Err: &errb})
			errs := errb.String()
			want := ExitUsage
			if strings.Contains(tt.wantErr, "reading") {
				want = ExitFail
			}
			if code != want || !strings.Contains(errs, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, want, tt.wantErr)
			}
		})
	}
}

func TestScanHelpTeaches(t *testing.T) {
	code, out, _ := run(t, "scan", "--help")
	for _, want := range []string{"-p-", "--top", "-iL", "host-unreachable", "admin-prohibited", "topports.txt",
		"Exit status: 0 the scan finished", "until then up to 4s", "every port with --all-states"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Fatalf("scan --help (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
}

func TestNmapArgs(t *testing.T) {
	got := nmapArgs([]string{"-iL", "f", "-iL=g", "-p-", "--", "-iL"})
	want := []string{"--input-list", "f", "--input-list=g", "-p-", "--", "-iL"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("nmapArgs = %q, want %q", got, want)
	}
}

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
	lab := netlab.New(t)
	bin := buildReach(t)
	c, s := lab.Host("c"), lab.Host("s")
	_, saddr := lab.Link(c, s)
	ln := s.Listen(t, "tcp", net.JoinHostPort(saddr.String(), "0"))
	open := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "2", "-j", "DROP")
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", "3", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	dead := lab.Unowned(t, saddr)
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

// A host that no probe left this host for says so, and --reason names the
// local error behind each port.
func TestScanTextLocalError(t *testing.T) {
	addr := netip.MustParseAddr("198.19.253.1")
	rep := &scan.Report{Ports: 1, Hosts: []scan.Host{{Addr: addr, State: scan.HostLocalError, Counts: scan.Counts{Filtered: 1},
		Ports: []scan.Port{{Addr: addr, Port: 22, State: scan.Filtered, Reason: scan.ReasonLocalError, Class: probe.LocalError, Errno: syscall.EINVAL, Tries: 1}}}}}
	var out strings.Builder
	r := &scanRenderer{env: &Env{Stdio: Stdio{Out: &out}}, fl: scanFlags{reason: true}, services: scan.Services{}}
	r.text(rep)
	for _, want := range []string{"Nothing was sent: this machine's own routes or firewall refused every probe (see the reasons; check ip route get 198.19.253.1)", "22/tcp  filtered  unknown  local-error (invalid argument)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "did not answer") {
		t.Fatalf("a host nothing was sent to reported as silent:\n%s", out.String())
	}
}

// The summary line is exact about slow and interrupted scans.
func TestScanSummaryLine(t *testing.T) {
	addr := netip.MustParseAddr("198.18.0.2")
	tests := []struct {
		rep  scan.Report
		want string
	}{
		{scan.Report{Ports: 1, Elapsed: 4 * time.Second, Counts: scan.Counts{Filtered: 1}, Hosts: []scan.Host{{Addr: addr, State: scan.HostNoAnswer, Counts: scan.Counts{Filtered: 1}}}},
			"Scanned 1 port on 1 host (0 up, 0 unreachable) in 4.00s (0.25 ports/s)\n"},
		{scan.Report{Ports: 10000, Elapsed: time.Second, Canceled: true, Counts: scan.Counts{Open: 1, Closed: 1980}, Hosts: []scan.Host{
			{Addr: addr, State: scan.HostUp, Counts: scan.Counts{Open: 1, Closed: 1980}},
			{Addr: addr.Next(), State: scan.HostUnreachable}}},
			"Scanned 10,000 ports on 2 hosts (1 up, 1 unreachable) in 1.00s (11,981 ports/s) (interrupted: 11,981 of 20,000 decided; partial results)\n"},
	}
	for _, tt := range tests {
		var out strings.Builder
		r := &scanRenderer{env: &Env{Stdio: Stdio{Out: &out}}, services: scan.Services{}}
		r.text(&tt.rep)
		if got := out.String()[strings.LastIndex(out.String(), "\nScanned")+1:]; got != tt.want {
			t.Errorf("summary %q\n     want %q", got, tt.want)
		}
	}
}
