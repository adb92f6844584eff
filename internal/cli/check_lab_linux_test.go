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

// From the client alone (the target is another host, no agent), a refusal
// or a host-unreachable that an ICMP error carries is a firewall's REJECT:
// a port without a listener answers with a reset, a down host sends no
// prohibition. A reset stays not-listening, as before.
func TestCheckICMPRejectFromClient(t *testing.T) {
	p := netlab.New(t).Pair()
	bin := buildReach(t)
	// Three probes an address: no ICMP may be rate-limited away.
	p.Server.Sysctl(t, "net.ipv4.icmp_ratelimit", "0")
	p.Server.AddRule(t, "filter", "-A INPUT -p tcp -m tcp --dport 7 -j REJECT")
	p.Server.AddRule(t, "filter",
		"-A INPUT -p tcp -m tcp --dport 8 -j REJECT --reject-with icmp-host-prohibited")
	srv := p.ServerAddr.String()
	for _, tc := range []struct {
		port, class, cause, conf, evidence string
	}{
		{"7", "refused", "firewall-reject", "likely", "refused by ICMP port-unreachable from " + srv +
			" — a TCP port without a listener answers with a reset, so a firewall rejected the SYN"},
		{"8", "host-unreachable", "firewall-reject", "likely", "host-unreachable by ICMP " +
			"admin-prohibited from " + srv + " — a host that is down or absent sends no prohibition"},
		{"9", "refused", "not-listening", "likely", "answered the SYN with a reset"},
	} {
		ep := net.JoinHostPort(srv, tc.port)
		out, errs, code := reachIn(t, bin, p.Client, "", "check", "--json", "--timeout", "2s", ep)
		var r struct {
			Class, Cause, Confidence string
			Findings                 []struct{ Cause, Evidence string }
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != ExitFail {
			t.Fatalf("%s: exit %d, %v; stdout %q stderr %q", ep, code, err, out, errs)
		}
		if r.Class != tc.class || r.Cause != tc.cause || r.Confidence != tc.conf ||
			len(r.Findings) == 0 || !strings.Contains(r.Findings[0].Evidence, tc.evidence) {
			t.Errorf("%s: %s %s (%s), findings %+v; want %s %s (%s) with evidence %q",
				ep, r.Class, r.Cause, r.Confidence, r.Findings, tc.class, tc.cause, tc.conf, tc.evidence)
		}
	}
}
