package server_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// Every server fault, run by reach serve in a namespace, is named by reach
// check: on the server (with its socket table and counters as evidence)
// and from a client on another host. delay-accept and stall are faults
// above the connect: the kernel completes the handshake and the doctor,
// which sends nothing, rightly finds the port reachable; under load
// delay-accept's queue fills, and that is overloaded.
func TestServeFaultNamedByCheck(t *testing.T) {
	netlab.Require(t)
	p := netlab.New(t).Pair()
	bin := filepath.Join(t.TempDir(), "reach")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/reach").CombinedOutput(); err != nil {
		t.Fatalf("building reach: %v\n%s", err, out)
	}
	// A fresh namespace: nothing else listens on this port.
	target := netip.AddrPortFrom(p.ServerAddr, 7000)
	for _, tc := range []struct {
		fault      []string
		fill       int    // connections the client holds open first
		onServer   string // reach check's cause on the server
		fromClient string // ... from the client; "" when it can only guess: then a full queue must be among its guesses
	}{
		{[]string{"--fault", "never-accept"}, 2, "overloaded", ""},
		{[]string{"--fault", "accept-close"}, 0, "closed-by-peer", "closed-by-peer"},
		{[]string{"--fault", "accept-reset"}, 0, "reset-by-peer", "reset-by-peer"},
		{[]string{"--fault", "delay-accept=30s", "--backlog", "1"}, 2, "overloaded", ""},
		{[]string{"--fault", "delay-accept=300ms"}, 0, "reachable", "reachable"},
		{[]string{"--fault", "stall"}, 0, "reachable", "reachable"},
	} {
		t.Run(strings.Join(tc.fault[1:], " "), func(t *testing.T) {
			srv := p.Server.Start(t, append([]string{bin, "serve", "--listen", target.String()}, tc.fault...)...)
			defer srv.Process.Kill()
			testnet.Eventually(t, 10*time.Second, "reach serve listening", func() bool {
				out, _ := p.Server.Exec("ss", "-Hltn", "sport = :7000")
				return strings.Contains(string(out), "LISTEN")
			})
			for range tc.fill {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, err := p.Client.DialContext(ctx, "tcp", target.String())
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			if got, _ := check(t, bin, p.Server, target); got != tc.onServer {
				t.Errorf("reach check on the server: %s; want %s", got, tc.onServer)
			}
			got, findings := check(t, bin, p.Client, target)
			switch {
			case tc.fromClient == "" && !slices.Contains(findings, "overloaded"):
				t.Errorf("reach check from the client: %s, findings %v; want overloaded among them", got, findings)
			case tc.fromClient == "":
				// SYNs vanish, as behind a DROP: the doctor guesses in order.
				t.Logf("reach check from the client: %s, findings %v", got, findings)
			case got != tc.fromClient:
				t.Errorf("reach check from the client: %s; want %s", got, tc.fromClient)
			}
		})
	}
}

// check runs reach check --json in h and returns its cause and the causes
// of its findings.
func check(t *testing.T, bin string, h *netlab.Host, target netip.AddrPort) (string, []string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", h.Name(), bin, "check", "--json", "--timeout", "2s", target.String())
	out, _ := cmd.Output()
	var r struct {
		Cause    string
		Findings []struct{ Cause string }
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("reach check: %v:\n%s", err, out)
	}
	var fs []string
	for _, f := range r.Findings {
		fs = append(fs, f.Cause)
	}
	return r.Cause, fs
}
