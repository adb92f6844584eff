package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/netlab"
)

// TestCheckFromNamespace: a server the client host reaches, checked from
// the client's namespace (--netns) and from a process's namespace that has
// no route (--pid, a namespace without a name, like a container's without
// network): reachable from one, no-route from the other, each report naming
// where it ran. reach runs itself again inside each.
func TestCheckFromNamespace(t *testing.T) {
	lab := netlab.New(t)
	bin := buildReach(t)
	p := lab.Pair()
	target := p.Server.Listen(t, "tcp", net.JoinHostPort(p.ServerAddr.String(), "0")).Addr().String()
	box := exec.Command("unshare", "--net", "sleep", "60")
	if err := box.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Process.Kill(); box.Wait() })
	pid := box.Process.Pid

	reach := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
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
	report := func(args ...string) (doctor.Report, int) {
		t.Helper()
		out, errs, code := reach(append([]string{"check", "--json", "--timeout", "1s"}, args...)...)
		var r doctor.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out, errs)
		}
		return r, code
	}

	r, code := report("--netns", p.Client.Name(), target)
	if code != ExitOK || !r.Reachable || r.Vantage == nil || r.Vantage.Namespace.Name != p.Client.Name() {
		t.Errorf("--netns %s: exit %d, reachable %v, vantage %+v", p.Client.Name(), code, r.Reachable, r.Vantage)
	}
	r, code = report("--pid", fmt.Sprint(pid), target)
	if code != ExitFail || r.Cause != doctor.NoRoute || r.Vantage == nil || r.Vantage.Namespace.PID != pid ||
		!strings.Contains(r.Verdict, fmt.Sprintf("from the network namespace of pid %d", pid)) {
		t.Errorf("--pid %d: exit %d, cause %s, vantage %+v, verdict %s", pid, code, r.Cause, r.Vantage, r.Verdict)
	}
	out, _, _ := reach("check", "--timeout", "1s", "--pid", fmt.Sprint(pid), target)
	if !strings.Contains(out, fmt.Sprintf("From the network namespace of pid %d (net:[", pid)) {
		t.Errorf("the text report does not say where it ran:\n%s", out)
	}
	_, errs, code := reach("check", "--netns", "reach-no-such-ns", target)
	if code != ExitFail || !strings.Contains(errs, "no such name in /run/netns") {
		t.Errorf("--netns reach-no-such-ns: exit %d, %s", code, errs)
	}
}

func TestCheckNamespaceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check", "127.0.0.1:80", "--netns", "a", "--pid", "1"},
		{"check", "127.0.0.1:80", "--pid", "0"},
		{"check", "127.0.0.1:80", "--netns", ""},
	} {
		if code, _, errs := run(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errs)
		}
	}
	_, out, _ := run(t, "check", "--help")
	for _, want := range []string{"--netns NAME|PATH", "--pid PID", "CAP_SYS_ADMIN", "resolv.conf", `"vantage"`} {
		if !strings.Contains(out, want) {
			t.Errorf("check --help does not say %q", want)
		}
	}
}
