package cli

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// Several targets are checked at once, and reported in the order given:
// one after another, three firewalled targets took three timeouts.
func TestCheckTargetsConcurrently(t *testing.T) {
	lab := netlab.New(t)
	bin := buildReach(t)
	h := lab.Host("h")
	var targets []string
	for range 3 {
		addr := h.Listen(t, "tcp", "127.0.0.1:0").Addr().String()
		_, port, _ := net.SplitHostPort(addr)
		h.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "DROP")
		targets = append(targets, addr)
	}
	const timeout = time.Second
	start := time.Now()
	out, errs, code := reachIn(t, bin, h, "", append([]string{"check", "--json", "--timeout", timeout.String()}, targets...)...)
	elapsed := time.Since(start)
	if code != ExitFail {
		t.Fatalf("exit %d, stderr %q; want 1", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(targets) {
		t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), len(targets), out)
	}
	for i, l := range lines {
		var r struct{ Target, Cause string }
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Target != targets[i] || r.Cause != "firewall-drop" {
			t.Errorf("line %d: %s (%v); want %s firewall-drop", i, l, err, targets[i])
		}
	}
	// Each check takes at most about timeout+15%; in a row they took 3.45s.
	if limit := 2*timeout + timeout/2; elapsed > limit {
		t.Errorf("3 firewalled targets took %v, want under %v: checked one after another?", elapsed, limit)
	}
}
