package cli

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
		{[]string{"scan", "198.18.0.1", "-Pn", "-sn"}, "either --skip-discovery or --hosts-only"},
		{[]string{"scan", "198.18.0.1", "--hosts-only", "-p", "22"}, "--hosts-only scans no ports"},
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
		"Exit status: 0 the scan finished", "until then up to 4s", "every port with --all-states",
		"--skip-discovery", "--hosts-only", "arp-response", "echo-reply", "no-response", "judged_by"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Fatalf("scan --help (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
}

func TestNmapArgs(t *testing.T) {
	got := nmapArgs([]string{"-iL", "f", "-iL=g", "-p-", "-Pn", "-sn", "--", "-iL"})
	want := []string{"--input-list", "f", "--input-list=g", "-p-", "--skip-discovery", "--hosts-only", "--", "-iL"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("nmapArgs = %q, want %q", got, want)
	}
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

// The progress bar names its phase and what it counts: hosts while
// discovering, ports after.
func TestScanProgressPhases(t *testing.T) {
	var errb strings.Builder
	r := &scanRenderer{env: &Env{Stdio: Stdio{Err: &errb}}}
	r.progress(scan.Progress{Phase: scan.PhaseDiscovery, Done: 64, Total: 256, Elapsed: time.Second})
	r.progress(scan.Progress{Phase: scan.PhasePorts, Done: 18, Total: 24, Elapsed: 300 * time.Millisecond})
	out := errb.String()
	for _, want := range []string{"\rdiscovery [=======       ", " 25%  64/256 hosts  ETA 3s ", "\rports     [", " 75%  18/24 ports  ETA 100ms "} {
		if !strings.Contains(out, want) {
			t.Fatalf("progress output %q lacks %q", out, want)
		}
	}
}

// How hosts were judged, in the summary line and in the JSON summary's
// counts, and the --hosts-only summary.
func TestScanJudgedSummary(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.1")
	hosts := []scan.Host{
		{Addr: a, State: scan.HostUp, Reason: scan.ReasonLocalhost, JudgedBy: scan.ByLocal},
		{Addr: a.Next(), State: scan.HostUp, Reason: scan.ReasonARPResponse, JudgedBy: scan.ByARP},
		{Addr: a.Next().Next(), State: scan.HostUnreachable, Reason: scan.ReasonNoResponse, JudgedBy: scan.ByARP, Evidence: "no reply to 3 ARP requests in 420ms"},
		{Addr: a.Next().Next().Next(), State: scan.HostUnreachable, Reason: scan.ReasonNoResponse, JudgedBy: scan.ByARP, Evidence: "no reply to 3 ARP requests in 421ms"},
	}
	if got, want := judgedText(hosts), "2 host-unreachable by no-response (arp), 1 up by localhost-response (local), 1 up by arp-response (arp)"; got != want {
		t.Errorf("judgedText = %q, want %q", got, want)
	}
	if got := judgedBy(hosts); got[scan.ByARP] != 3 || got[scan.ByLocal] != 1 || len(got) != 2 {
		t.Errorf("judgedBy = %v", got)
	}
	if got := hostReasons(hosts); got[scan.ReasonNoResponse] != 2 || got[scan.ReasonARPResponse] != 1 || len(got) != 3 {
		t.Errorf("hostReasons = %v", got)
	}
	var out strings.Builder
	r := &scanRenderer{env: &Env{Stdio: Stdio{Out: &out}}, services: scan.Services{}}
	r.text(&scan.Report{Hosts: hosts, HostsOnly: true, Discovery: 420 * time.Millisecond, Elapsed: 430 * time.Millisecond})
	for _, want := range []string{
		"Host is up, arp-response (arp)",
		"reach scan report for 198.18.0.3-198.18.0.4 (2 hosts): host-unreachable (e.g. no reply to 3 ARP requests in 420ms); no-response, judged by arp",
		"Hosts judged: 2 host-unreachable by no-response (arp), 1 up by localhost-response (local), 1 up by arp-response (arp); discovery took 0.42s",
		"Discovered 4 hosts (2 up, 2 unreachable, 0 silent) in 0.43s (no port scan: --hosts-only)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}
