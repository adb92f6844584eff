package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// The hub asks an https agent for evidence only when --agent-ca trusts the
// agent's certificate; without it the call fails on the certificate.
func TestWatchAgentTLSFlags(t *testing.T) {
	agentSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != agent.PathEvidence || r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"host":"db-1"}`)
	}))
	defer agentSrv.Close()
	dir := t.TempDir()
	ca, token, config := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token"), filepath.Join(dir, "reach.yaml")
	writeConfig(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: agentSrv.Certificate().Raw})))
	writeConfig(t, token, "s3cret\n")
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
		hub, err := newHub(cfg, nil, hc)
		if err != nil {
			t.Fatal(err)
		}
		host, _, _, _, err := hub.Explain(context.Background(), "web-1", "db-1:5432", netip.MustParseAddrPort("198.18.0.2:5432"), probe.Refused)
		if err == nil && host != "db-1" {
			t.Errorf("Explain named host %q, want db-1", host)
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

// TestReloadHubForgetsRemovedPairs: a pair removed from the agents: section
// by a reload, or by a restart, leaves the dashboard and /metrics; it stayed
// there, down for ever, keeping reach_endpoint_up at 0.
func TestReloadHubForgetsRemovedPairs(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(pairs string) *monitor.Config {
		t.Helper()
		cfg, err := monitor.ParseConfig("reach.yaml", []byte(`endpoints:
  - name: api
    target: 127.0.0.1:8080
agents:
  token_file: `+tok+`
  hosts:
    - {name: web-1, addr: 127.0.0.1}
    - {name: web-2, addr: 127.0.0.2}
    - {name: db-1, addr: 127.0.0.3}
  pairs:
`+pairs))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	both := config("    - {from: web-1, to: \"db-1:5432\"}\n    - {from: web-2, to: \"db-1:5432\"}\n")
	log := slog.New(slog.DiscardHandler)
	hub, err := newHub(both, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := monitor.New(t.Context(), both, monitor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hc, _ := hubConfig(both)
	lists, _ := hc.ProbeLists()
	for src, pl := range lists {
		for _, tg := range pl.Targets {
			m.Observe(t.Context(), src, monitor.Endpoint{Name: tg.ID, Expect: monitor.ExpectOpen}, time.Now(), probe.Result{Class: probe.Refused})
		}
	}
	shown := func() (out []string) {
		for _, st := range m.Statuses() {
			out = append(out, st.Source+"/"+st.Endpoint)
		}
		return out
	}
	if got := shown(); len(got) != 3 {
		t.Fatalf("before the reload: %v, want api and two pairs", got)
	}
	reloadHub(hub, m, config("    - {from: web-1, to: \"db-1:5432\"}\n"), log)
	if got, want := shown(), []string{"local/api", "web-1/db-1:5432"}; !slices.Equal(got, want) {
		t.Errorf("after the reload: %v, want %v", got, want)
	}
	forgetRemovedPairs(m, nil) // a restart without an agents: section
	if got, want := shown(), []string{"local/api"}; !slices.Equal(got, want) {
		t.Errorf("without agents: %v, want %v", got, want)
	}
}
