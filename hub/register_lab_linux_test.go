package hub_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
)

// Four agents in four namespaces that the hub's config never names
// register, get their probe lists from the label rules, and the matrix
// holds exactly the pairs the rules make. One agent stopped with SIGTERM
// deregisters and leaves the matrix; one killed by pid turns stale, then
// alerts (the webhook) after the grace.
func TestRegisteredAgentsFollowRules(t *testing.T) {
	lab := netlab.New(t)
	names := []string{"hub", "web1", "web2", "db1", "mon1"}
	var hosts []*netlab.Host
	for _, n := range names {
		hosts = append(hosts, lab.Host(n))
	}
	addrs := lab.LAN(hosts...)
	dir := t.TempDir()
	// db1's service; the agents listen on agentPort each.
	testnet.ServeOn(t, hosts[3].Listen(t, "tcp", netip.AddrPortFrom(addrs[3], labPort).String()), testnet.HangUp)

	// The webhook receiver, on the hub namespace's own loopback.
	var mu sync.Mutex
	var alerts []monitor.Alert
	hookLn := hosts[0].Listen(t, "tcp", "127.0.0.1:0")
	hook := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a monitor.Alert
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&a); err == nil {
			mu.Lock()
			alerts = append(alerts, a)
			mu.Unlock()
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	go hook.Serve(hookLn)
	t.Cleanup(func() { hook.Close() })

	const stale, grace = 3 * time.Second, 2 * time.Second
	conf := fmt.Sprintf(`alerts: {rise: 1, fall: 1, webhook: "http://%s/"}
agents:
  token_file: %s
  interval: 1s
  timeout: %v
  matrix:
    rules:
      - {from: {role: web}, to: {role: db}, ports: [%d]}
      - {from: {role: mon}, to: all, ports: [%d]}
  registration: {stale_after: %v, alert_after: %v}
`, hookLn.Addr(), filepath.Join(dir, "token"), labTimeout, labPort, agentPort, stale, grace)
	for name, body := range map[string]string{"token": labToken + "\n", "reach.yaml": conf,
		"labels": "role=\"db\"\ntopology.kubernetes.io/zone=\"zone-a\"\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hubAddr := netip.AddrPortFrom(addrs[0], hubPort).String()
	hubURL := "http://" + hubAddr
	hosts[0].Start(t, "env", "REACH_LAB_EXEC=1", exe, "watch", "-c", filepath.Join(dir, "reach.yaml"),
		"--listen", hubAddr, "--store", filepath.Join(dir, "reach.db"), "--no-doctor")
	web := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: hosts[0].DialContext}}
	getJSON := func(path string, out any) bool {
		req, _ := http.NewRequest(http.MethodGet, hubURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+labToken)
		resp, err := web.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(out) == nil
	}
	testnet.Eventually(t, 30*time.Second, "the hub answers", func() bool {
		var m hub.Matrix
		return getJSON("/agents/matrix.json", &m)
	})

	labels := map[string][]string{
		"web1": {"--label", "role=web", "--label", "topology.kubernetes.io/zone=zone-a"},
		"web2": {"--label", "role=web", "--label", "topology.kubernetes.io/zone=zone-b"},
		"db1":  {"--labels-file", filepath.Join(dir, "labels")}, // as the Downward API writes it
		"mon1": {"--label", "role=mon"},
	}
	agents := map[string]*os.Process{}
	for i := 1; i < len(hosts); i++ {
		args := append([]string{"env", "REACH_LAB_EXEC=1", "REACH_TOKEN=" + labToken, exe, "agent",
			"--hub", hubURL, "--name", names[i], "--addr", addrs[i].String(),
			"--listen", netip.AddrPortFrom(addrs[i], agentPort).String(), "--report-every", "200ms",
			"--no-net-watch"}, labels[names[i]]...)
		agents[names[i]] = hosts[i].Start(t, args...).Process
	}

	// cells lists the matrix's filled cells as source->target=class.
	cells := func() []string {
		var m hub.Matrix
		if !getJSON("/agents/matrix.json", &m) {
			return nil
		}
		var out []string
		for i, src := range m.Sources {
			for j, tgt := range m.Targets {
				if c := m.Cells[i][j]; c != nil {
					out = append(out, fmt.Sprintf("%s->%s=%s", src, tgt, c.Class))
				}
			}
		}
		slices.Sort(out)
		return out
	}
	waitCells := func(what string, want []string) {
		t.Helper()
		var got []string
		if !testnet.Poll(30*time.Second, func() bool { got = cells(); return slices.Equal(got, want) }) {
			t.Fatalf("the matrix never showed %s:\n got %v\nwant %v", what, got, want)
		}
	}
	all := []string{
		"db1->web1:7070=open", // no rule gives db1 anything: none of its own
		"mon1->db1:7070=open", "mon1->web1:7070=open", "mon1->web2:7070=open",
		"web1->db1:5000=open", "web2->db1:5000=open",
	}
	all = slices.DeleteFunc(all, func(s string) bool { return strings.HasPrefix(s, "db1->") })
	waitCells("the pairs the rules make", all)

	var infos []agent.AgentInfo
	if !getJSON(agent.PathAgents, &infos) || len(infos) != 4 {
		t.Fatalf("the hub lists %+v, want the four agents", infos)
	}
	for _, ai := range infos {
		if !ai.Registered || ai.Agent == "" || ai.State != "" {
			t.Errorf("agent %s: %+v, want registered, advertised, in time", ai.Name, ai)
		}
		if ai.Name == "db1" && (ai.Labels["role"] != "db" || ai.Labels["topology.kubernetes.io/zone"] != "zone-a") {
			t.Errorf("db1's labels from its Downward API file: %v", ai.Labels)
		}
	}

	// web2 leaves cleanly: deregistered, its pairs gone from the matrix.
	if err := agents["web2"].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitCells("web2 gone after it deregistered", []string{
		"mon1->db1:7070=open", "mon1->web1:7070=open", "web1->db1:5000=open"})
	if !getJSON(agent.PathAgents, &infos) || slices.ContainsFunc(infos, func(a agent.AgentInfo) bool { return a.Name == "web2" }) {
		t.Errorf("after SIGTERM the hub still lists web2: %+v", infos)
	}

	// db1 vanishes (killed by pid): stale, then an alert after the grace.
	if err := agents["db1"].Kill(); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		var infos []agent.AgentInfo
		if !getJSON(agent.PathAgents, &infos) {
			return "?"
		}
		for _, ai := range infos {
			if ai.Name == "db1" {
				return ai.State
			}
		}
		return "gone"
	}
	testnet.Eventually(t, stale+10*time.Second, "db1 stale", func() bool { return state() == agent.StateStale })
	// Alerts of pairs (mon1 -> db1:7070 down) are the monitor's; the
	// agent's own is endpoint "agent".
	agentAlerts := func() []monitor.Alert {
		mu.Lock()
		defer mu.Unlock()
		return slices.DeleteFunc(slices.Clone(alerts), func(a monitor.Alert) bool { return a.Endpoint != "agent" })
	}
	if early := agentAlerts(); len(early) != 0 {
		t.Errorf("an alert came while db1 was only stale (before the grace): %+v", early)
	}
	testnet.Eventually(t, grace+10*time.Second, "db1 alerting", func() bool { return state() == agent.StateAlerting })
	var got monitor.Alert
	testnet.Eventually(t, 10*time.Second, "the webhook gets db1's alert", func() bool {
		as := agentAlerts()
		if len(as) > 0 {
			got = as[0]
		}
		return len(as) > 0
	})
	if as := agentAlerts(); len(as) != 1 {
		t.Errorf("agent alerts: %+v, want db1's one", as)
	}
	if got.State != monitor.StateDown || got.Cause != "agent-stale" || got.Target != addrs[3].String() ||
		got.Labels["role"] != "db" {
		t.Errorf("db1's alert: %+v", got)
	}
	// Its peers still probe it: its agent port now refuses.
	waitCells("db1's agent port refusing", []string{
		"mon1->db1:7070=refused", "mon1->web1:7070=open", "web1->db1:5000=open"})
}
