package cli

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// The hub asks an https agent for evidence only when --agent-ca trusts the
// agent's certificate; without it the call fails on the certificate.
func TestWatchAgentTLSFlags(t *testing.T) {
	agentSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != agent.PathEvidence || r.Header.Get("Authorization") != "Bearer s3cret-s3cret-s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"host":"db-1"}`)
	}))
	defer agentSrv.Close()
	dir := t.TempDir()
	ca, token, config := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token"), filepath.Join(dir, "reach.yaml")
	writeConfig(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: agentSrv.Certificate().Raw})))
	writeConfig(t, token, "s3cret-s3cret-s3cret\n")
	// Only the agent's URL is called: 198.18.0.x are never dialled here.
	writeConfig(t, config, fmt.Sprintf(`agents:
  token_file: %s
  hosts:
    - {name: web-1, addr: 198.18.0.1}
    - {name: db-1, addr: 198.18.0.2, agent: %q}
  pairs:
    - {from: web-1, to: "db-1:5432"}
`, token, agentSrv.URL))
	cfg, err := monitor.LoadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	explain := func(f agentTLSFlags) error {
		t.Helper()
		hc, err := f.client()
		if err != nil {
			t.Fatal(err)
		}
		w, err := hub.NewWatch(t.Context(), cfg, hub.WatchOptions{AgentClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		x, err := w.Hub.Explain(t.Context(), hub.Pair{Source: "web-1", Target: "db-1:5432",
			Addr: netip.MustParseAddrPort("198.18.0.2:5432"), Class: probe.Refused})
		if err == nil && x.Host != "db-1" {
			t.Errorf("Explain named host %q, want db-1", x.Host)
		}
		return err
	}
	if err := explain(agentTLSFlags{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without --agent-ca: %v, want a certificate error", err)
	}
	if err := explain(agentTLSFlags{ca: ca}); err != nil {
		t.Errorf("with --agent-ca: %v", err)
	}

	// The flags reach the command: a CA that cannot be read is a usage error.
	code, _, errs := run(t, "watch", "-c", config, "--check-config", "--agent-ca", filepath.Join(dir, "missing.pem"))
	if code != ExitUsage || !strings.Contains(errs, "missing.pem") {
		t.Errorf("unreadable --agent-ca: exit %d, stderr %s", code, errs)
	}
	code, _, errs = run(t, "watch", "-c", config, "--check-config", "--agent-cert", ca)
	if code != ExitUsage || !strings.Contains(errs, "certificate") {
		t.Errorf("--agent-cert without --agent-key: exit %d, stderr %s", code, errs)
	}
	if code, out, errs := run(t, "watch", "-c", config, "--check-config", "--agent-ca", ca); code != ExitOK {
		t.Errorf("valid --agent-ca: exit %d\n%s%s", code, out, errs)
	}
}

// A hub on loopback warns when an agent lives elsewhere, and only then.
func TestWarnHubOnLoopback(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9190}
	all := &net.TCPAddr{IP: net.IPv4zero, Port: 9190}
	local := agent.AgentInfo{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")}
	remote := agent.AgentInfo{Name: "b", Addr: netip.MustParseAddr("198.18.0.2")}
	for _, tc := range []struct {
		addr   net.Addr
		agents []agent.AgentInfo
		warn   bool
	}{
		{loop, []agent.AgentInfo{local, remote}, true},
		{loop, []agent.AgentInfo{local}, false},
		{all, []agent.AgentInfo{local, remote}, false},
	} {
		var buf bytes.Buffer
		warnHubOnLoopback(slog.New(slog.NewTextHandler(&buf, nil)), tc.addr, tc.agents)
		if got := strings.Contains(buf.String(), "agents on other hosts cannot reach it"); got != tc.warn {
			t.Errorf("listen %v, agents %v: warned %v, want %v: %s", tc.addr, tc.agents, got, tc.warn, buf.String())
		}
	}
}

func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9190": true, ":9190": true, "[::1]:0": true, "localhost:7070": true,
		"[fe80::1%eth0]:7070": true, "0.0.0.0:65535": true,
		"127.0.0.1:65536": false, "127.0.0.1:70000": false, "127.0.0.1": false, "127.0.0.1:": false,
		"127.0.0.1:http": false, "::1:80": false, "bogus": false, "": false, "a b:80": false,
		"1.2.3:80": false, "[::1]:+80": false, "[::1]:0x50": false,
	} {
		if err := checkListen(addr); (err == nil) != ok {
			t.Errorf("checkListen(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func FuzzCheckListen(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9190", ":0", "[::1]:70000", "x:", "[fe80::1%lo]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if checkListen(addr) != nil {
			return
		}
		// What it accepts, net.Listen parses: a failure to listen is then
		// about this host, never about the syntax.
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("checkListen accepted %q, which SplitHostPort refuses: %v", addr, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || strings.ContainsAny(port, "+-") {
			t.Fatalf("checkListen accepted %q with port %q", addr, port)
		}
	})
}

// --check-config calls a hub interval below the agents' floor invalid,
// with its line and what to write instead.
func TestHostileCheckConfigIntervalFloor(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, filepath.Join(dir, "token"), "a-token-of-some-length-0123456789\n")
	config := filepath.Join(dir, "reach.yaml")
	writeConfig(t, config, "endpoints:\n  - {name: a, target: 127.0.0.1:1}\nagents:\n  token_file: "+
		filepath.Join(dir, "token")+"\n  interval: 1ns\n  hosts: [{name: a, addr: 127.0.0.1}]\n")
	code, out, errs := run(t, "watch", "-c", config, "--check-config")
	want := "line 5: agents.interval 1ns is below the floor of 1s"
	if code != ExitFail || out != "" || !strings.Contains(errs, want) || !strings.Contains(errs, "write interval: 1s or longer") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", code, out, errs, want)
	}
}

// --check-config says valid for pairs agents will refuse, and warns of each.
func TestHostileCheckConfigWarnsOfRefusedTargets(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, filepath.Join(dir, "token"), "a-token-of-some-length-0123456789\n")
	config := filepath.Join(dir, "reach.yaml")
	writeConfig(t, config, "endpoints:\n  - {name: a, target: 127.0.0.1:1}\nagents:\n  token_file: "+
		filepath.Join(dir, "token")+"\n  hosts: [{name: a, addr: 127.0.0.1}]\n  pairs:\n"+
		"    - {from: a, to: \"169.254.169.254:80\"}\n    - {from: a, to: \"0.0.0.0:22\"}\n"+
		"    - {from: a, to: \"255.255.255.255:1\"}\n    - {from: a, to: \"127.0.0.1:22\"}\n")
	code, out, errs := run(t, "watch", "-c", config, "--check-config")
	if code != ExitOK || !strings.Contains(out, "valid") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
	for _, want := range []string{
		"reach: warning: a → 169.254.169.254:80: 169.254.169.254:80 is link-local: agent a will refuse",
		"reach: warning: a → 0.0.0.0:22: 0.0.0.0:22 is unspecified",
		"--allow-targets 255.255.255.255/32",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "127.0.0.1:22 is") {
		t.Errorf("a loopback pair warned of:\n%s", errs)
	}
}

func TestParseAllowTargets(t *testing.T) {
	got, err := parseAllowTargets([]string{"169.254.169.254", "fe80::/10", "224.0.0.5/4", "::ffff:0.0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "[169.254.169.254/32 fe80::/10 224.0.0.0/4 0.0.0.0/32]" {
		t.Errorf("parseAllowTargets = %s", s)
	}
	code, _, errs := run(t, "agent", "--hub", "http://127.0.0.1:1", "--allow-targets", "169.254.0.0/16,metadata")
	if code != ExitUsage || !strings.Contains(errs, `--allow-targets "metadata": want CIDRs or addresses`) {
		t.Errorf("bad --allow-targets: exit %d, stderr %s", code, errs)
	}
}
