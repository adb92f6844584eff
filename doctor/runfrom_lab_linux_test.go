package doctor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/sockets"
)

// helperCheck is the test binary run by RunFrom: it runs the ladder for
// args[1:] with timeout args[0] and prints each report as JSON, as
// reach check --json does.
func helperCheck(args []string) int {
	v, err := doctor.ChildVantage()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	timeout, err := time.ParseDuration(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	eps, err := endpoint.ParseEndpoints(args[1:], 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	code := 0
	enc := json.NewEncoder(os.Stdout)
	for _, r := range doctor.RunMany(context.Background(), eps, doctor.Options{Timeout: timeout, Vantage: v}) {
		if !r.Reachable {
			code = 1
		}
		enc.Encode(r)
	}
	return code
}

// runFrom runs the ladder for targets from inside the namespace ref names.
func runFrom(t *testing.T, ref sockets.NamespaceRef, targets ...string) []*doctor.Report {
	t.Helper()
	child := exec.Command("/proc/self/exe", append([]string{"doctor-helper-check", quick.String()}, targets...)...)
	var reports []*doctor.Report
	for r, err := range doctor.RunFrom(context.Background(), ref, child) {
		if err != nil {
			t.Fatalf("RunFrom %v: %v", ref, err)
		}
		reports = append(reports, r)
	}
	if len(reports) != len(targets) {
		t.Fatalf("RunFrom %v: %d reports for %d targets", ref, len(reports), len(targets))
	}
	return reports
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	ino, err := sys.NetnsInode(path)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// TestRunFrom: a server on another host that the Docker host reaches, but
// a container does not, its own firewall rejecting it. Run from each
// namespace, the reports differ and name where they ran; from the
// container, the rejecting rule is the container's own (iptables-save ran
// inside it), and the name resolves through the container's own
// resolv.conf, bound for the ladder (the host's points nowhere in the lab).
func TestRunFrom(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	d := lab.Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{{Name: "app"}}})
	app := d.Container("app")
	api := netip.AddrPortFrom(d.ClientAddr, 8080)
	d.Client.Serve(t, "api", api)
	app.Host.Iptables(t, "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "REJECT")

	// A process of the container with a mount namespace and a resolv.conf
	// of its own, as a container has, naming a lab DNS server that knows api.
	dns := app.Host.ServeDNS(t, app.Addr, map[string][]netip.Addr{"api.lab.test": {d.ClientAddr}})
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+dns.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := app.Host.Start(t, "sh", "-c", "mount --bind "+resolv+" /etc/resolv.conf && echo ready && exec sleep 60")
	waitForOutput(t, proc, "ready")

	fromHost := runFrom(t, sockets.NamespaceRef{Name: d.Host.Name()}, api.String())[0]
	fromApp := runFrom(t, sockets.NamespaceRef{PID: proc.Process.Pid}, "api.lab.test:8080", api.String())

	if !fromHost.Reachable || fromHost.Vantage == nil || fromHost.Vantage.Namespace.Name != d.Host.Name() ||
		fromHost.Vantage.Namespace.Inode != inode(t, "/run/netns/"+d.Host.Name()) {
		t.Errorf("from the Docker host: reachable %v, vantage %+v; want reachable from %s", fromHost.Reachable, fromHost.Vantage, d.Host.Name())
	}
	if !strings.Contains(fromHost.Verdict, "from network namespace "+d.Host.Name()) {
		t.Errorf("verdict does not name the namespace: %s", fromHost.Verdict)
	}
	appIno := inode(t, "/run/netns/"+app.Host.Name())
	for i, r := range fromApp {
		v := r.Vantage
		if v == nil || v.Namespace.Inode != appIno || v.Namespace.PID != proc.Process.Pid {
			t.Fatalf("report %d: vantage %+v; want net:[%d] of pid %d", i, v, appIno, proc.Process.Pid)
		}
		if r.Reachable || r.Cause != doctor.FirewallReject || r.Confidence != doctor.Confirmed {
			t.Errorf("%s from the container: %s (%s) reachable=%v; want firewall-reject (confirmed)\n%s", r.Target, r.Cause, r.Confidence, r.Reachable, r.Verdict)
		}
		want := "seen from network namespace " + app.Host.Name()
		if len(r.Findings) == 0 || !strings.Contains(r.Findings[0].Evidence, "chain OUTPUT") || !strings.Contains(r.Findings[0].Evidence, want) {
			t.Errorf("%s: the first finding does not quote the container's OUTPUT rule, seen from it: %+v", r.Target, r.Findings)
		}
		if len(r.Addresses) != 1 || r.Addresses[0].Addr != api.String() {
			t.Errorf("%s resolved to %+v, want %s (through the container's resolv.conf)", r.Target, r.Addresses, api)
		}
		for _, c := range r.Checks {
			if c.Name == "kernel" && !strings.Contains(c.Detail, fmt.Sprintf("in network namespace %s (net:[%d])", app.Host.Name(), appIno)) {
				t.Errorf("the kernel check does not name the namespace its counters are of: %s", c.Detail)
			}
		}
		if !strings.Contains(v.DNS, "/proc/"+fmt.Sprint(proc.Process.Pid)+"/root/etc/resolv.conf") {
			t.Errorf("DNS: %s; want the container's resolv.conf", v.DNS)
		}
	}
	// The bind was the child's alone.
	if b, err := os.ReadFile("/etc/resolv.conf"); err != nil || strings.Contains(string(b), dns.Addr().String()) {
		t.Errorf("this host's /etc/resolv.conf changed: %q %v", b, err)
	}
}

func waitForOutput(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := cmd.Stdout.(fmt.Stringer); ok && strings.Contains(s.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%v did not say %q within 10s", cmd.Args, want)
}

// TestRunFromErrors: no such namespace, no such process, not a namespace
// file, and entering without root, each a *VantageError that says so.
func TestRunFromErrors(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("v")
	tests := []struct {
		ref  sockets.NamespaceRef
		is   error
		says string
	}{
		{sockets.NamespaceRef{Name: "reach-no-such-ns"}, fs.ErrNotExist, "no such name in /run/netns"},
		{sockets.NamespaceRef{PID: 1 << 22}, fs.ErrNotExist, "no such process"},
		{sockets.NamespaceRef{Path: "/etc/hostname"}, sys.ErrNotNetns, "not a network namespace file"},
	}
	for _, tt := range tests {
		var got error
		for _, err := range doctor.RunFrom(context.Background(), tt.ref, exec.Command("/proc/self/exe", "doctor-helper-check", "1s", "127.0.0.1:1")) {
			got = err
		}
		var ve *doctor.VantageError
		if !errors.As(got, &ve) || !errors.Is(got, tt.is) || !strings.Contains(got.Error(), tt.says) {
			t.Errorf("%v: %v; want a VantageError that is %v and says %q", tt.ref, got, tt.is, tt.says)
		}
	}
	// Without root: a copy of the test binary, run as nobody, asks to enter h.
	dir := t.TempDir()
	bin := filepath.Join(dir, "doctor.test")
	b, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "doctor-helper-runfrom", h.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	want := "doctor: enter network namespace " + h.Name() + ": entering a network namespace needs CAP_SYS_ADMIN: run as root or use ip netns exec"
	if err != nil || strings.TrimSpace(string(out)) != want+" (permission: true)" {
		t.Errorf("as nobody: %v\n%s\nwant %s (permission: true)", err, out, want)
	}
}

// helperRunFrom runs as nobody: RunFrom into namespace name, and prints the
// error and whether it is a permission error.
func helperRunFrom(name string) int {
	for _, err := range doctor.RunFrom(context.Background(), sockets.NamespaceRef{Name: name}, exec.Command("/bin/true")) {
		fmt.Printf("%v (permission: %v)\n", err, errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EPERM))
	}
	return 0
}
