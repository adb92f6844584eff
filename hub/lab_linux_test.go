package hub_test

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/internal/cli"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// TestMain lets the test binary stand in for reach: the lab starts
// "reach agent" in each namespace as this binary with REACH_LAB_EXEC=1.
func TestMain(m *testing.M) {
	if os.Getenv("REACH_LAB_EXEC") == "1" {
		profileFor(os.Getenv("REACH_BENCH_CPUPROFILE"), 40*time.Second)
		heapProfiles(os.Getenv("REACH_BENCH_HEAPPROFILE"), 30*time.Second)
		// As cmd/reach: SIGTERM ends a command cleanly (an agent deregisters).
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// profileFor writes a CPU profile of this process's first d to file (a
// path with %d for the pid), for a benchmark's look inside its replicas.
func profileFor(file string, d time.Duration) {
	if file == "" {
		return
	}
	f, err := os.Create(fmt.Sprintf(file, os.Getpid()))
	if err != nil || pprof.StartCPUProfile(f) != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		return
	}
	time.AfterFunc(d, func() { pprof.StopCPUProfile(); f.Close() })
}

// heapProfiles writes a heap profile of this process to file (a path
// with %d for the pid) every d, each over the last, so a benchmark's
// replicas leave what they held near their end
// (go tool pprof -sample_index=inuse_space).
func heapProfiles(file string, d time.Duration) {
	if file == "" {
		return
	}
	go func() {
		for range time.Tick(d) {
			f, err := os.Create(fmt.Sprintf(file, os.Getpid()))
			if err == nil {
				err = pprof.WriteHeapProfile(f)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "heap profile:", err)
				return
			}
		}
	}()
}

const (
	labToken    = "lab-token-0123456789"
	labPort     = 5000 // every host serves it
	agentPort   = 7070 // each agent's own listener (namespaces are empty: no clash)
	hubPort     = 9190
	labInterval = 3 * time.Second
	labTimeout  = 500 * time.Millisecond
)

// fleet is four hosts on one LAN, each with a server on labPort and a
// "reach agent" process, and "reach watch" as the hub on the first.
type fleet struct {
	hosts  []*netlab.Host
	names  []string
	addrs  []netip.Addr
	hubURL string
	web    *http.Client // dials from the hub's host
	watch  []string     // how the hub was started
	hub    *exec.Cmd
	agents []*exec.Cmd // each host's reach agent
}

func newFleet(t *testing.T) *fleet { return newFleetWith(t, fleetOptions{}) }

// fleetOptions vary the fleet: with mTLS the hub serves https requiring
// client certificates, and each agent has its own (CN = its name); interval
// replaces labInterval.
type fleetOptions struct {
	mTLS     bool
	interval time.Duration
}

func newFleetWith(t *testing.T, o fleetOptions) *fleet {
	mTLS := o.mTLS
	t.Helper()
	lab := netlab.New(t)
	f := &fleet{names: []string{"hub", "web", "db", "batch"}}
	for _, n := range f.names {
		f.hosts = append(f.hosts, lab.Host(n))
	}
	f.addrs = lab.LAN(f.hosts...)
	dir := t.TempDir()
	conf := fmt.Sprintf("alerts: {rise: 1, fall: 1}\nagents:\n  token_file: %s\n  interval: %v\n  timeout: %v\n  hosts:\n", filepath.Join(dir, "token"), cmp.Or(o.interval, labInterval), labTimeout)
	for i, n := range f.names {
		conf += fmt.Sprintf("    - {name: %s, addr: %s}\n", n, f.addrs[i]) // agents advertise their URLs
		testnet.ServeOn(t, f.hosts[i].Listen(t, "tcp", netip.AddrPortFrom(f.addrs[i], labPort).String()), testnet.HangUp)
	}
	conf += fmt.Sprintf("  groups:\n    - {name: all, hosts: [%s], ports: [%d]}\n", strings.Join(f.names, ", "), labPort)
	for name, body := range map[string]string{"token": labToken + "\n", "reach.yaml": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hubAddr := netip.AddrPortFrom(f.addrs[0], hubPort).String()
	f.hubURL = "http://" + hubAddr
	tr := &http.Transport{DialContext: f.hosts[0].DialContext}
	f.web = &http.Client{Timeout: 5 * time.Second, Transport: tr}
	watch := []string{"env", "REACH_LAB_EXEC=1", exe, "watch", "-c", filepath.Join(dir, "reach.yaml"),
		"--listen", hubAddr, "--store", filepath.Join(dir, "reach.db")}
	var ca *hub.TestCA
	if mTLS {
		ca = hub.NewTestCA(t)
		cert, key := ca.Issue(t, "hub-server", x509.ExtKeyUsageServerAuth, f.addrs[0].AsSlice())
		watch = append(watch, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca.CAFile())
		f.hubURL = "https://" + hubAddr
		cert, key = ca.Issue(t, "browser", x509.ExtKeyUsageClientAuth)
		tc, err := agent.ClientTLS(ca.CAFile(), cert, key)
		if err != nil {
			t.Fatal(err)
		}
		tr.TLSClientConfig = tc
	}
	f.watch = watch
	f.hub = f.hosts[0].Start(t, watch...)
	for i, h := range f.hosts {
		args := []string{"env", "REACH_LAB_EXEC=1", "REACH_TOKEN=" + labToken, exe, "agent",
			"--hub", f.hubURL, "--name", f.names[i], "--listen", netip.AddrPortFrom(f.addrs[i], agentPort).String(),
			"--report-every", "200ms"}
		if mTLS {
			cert, key := ca.Issue(t, f.names[i], x509.ExtKeyUsageClientAuth)
			args = append(args, "--hub-ca", ca.CAFile(), "--cert", cert, "--key", key)
		}
		f.agents = append(f.agents, h.Start(t, args...))
	}
	f.waitHub(t)
	return f
}

func (f *fleet) waitHub(t *testing.T) {
	t.Helper()
	testnet.Eventually(t, 30*time.Second, "reach watch (the hub) answers", func() bool { return f.get(t, "/healthz") != "" })
}

// matrix fetches the hub's matrix as the dashboard would.
func (f *fleet) matrix(t *testing.T) hub.Matrix {
	t.Helper()
	var m hub.Matrix
	if err := json.Unmarshal([]byte(f.get(t, "/agents/matrix.json")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// get fetches a dashboard path from the hub; "" when it does not answer yet.
func (f *fleet) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := f.web.Get(f.hubURL + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return string(b)
}

func (f *fleet) agentURL(i int) string {
	return "http://" + netip.AddrPortFrom(f.addrs[i], agentPort).String()
}

// failing returns the matrix's cells that are not fresh and open, as
// "source->target=class", and how many cells are filled.
func failing(m hub.Matrix) (bad []string, filled int) {
	for i, src := range m.Sources {
		for j, tgt := range m.Targets {
			c := m.Cells[i][j]
			if c == nil {
				continue
			}
			filled++
			if c.Class != probe.Open || c.Stale {
				bad = append(bad, fmt.Sprintf("%s->%s=%s", src, tgt, c.Class))
			}
		}
	}
	return bad, filled
}

// waitMatrix polls the hub until cond holds for the matrix, or d passes.
func waitMatrix(t *testing.T, f *fleet, d time.Duration, what string, cond func(bad []string, filled int) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var bad []string
	var filled int
	if testnet.Poll(d, func() bool { bad, filled = failing(f.matrix(t)); return cond(bad, filled) }) {
		return time.Since(start)
	}
	t.Fatalf("after %v the matrix still does not show %s: %d cells, failing %v", d, what, filled, bad)
	return 0
}

func TestFleetMatrixShowsBlockedPair(t *testing.T) {
	f := newFleet(t)
	const cells = 4 * 3
	waitMatrix(t, f, 30*time.Second, "every pair open", func(bad []string, filled int) bool {
		return filled == cells && len(bad) == 0
	})

	// Block web -> db with a firewall rule on db.
	web, db := f.addrs[1], f.hosts[2]
	rule := db.AddRule(t, "filter", fmt.Sprintf("-I INPUT -s %s/32 -p tcp -m tcp --dport %d -j DROP", web, labPort))
	want := fmt.Sprintf("web->db:%d=%s", labPort, probe.Timeout)
	took := waitMatrix(t, f, 2*labInterval, "exactly "+want, func(bad []string, filled int) bool {
		return filled == cells && len(bad) == 1 && bad[0] == want
	})
	t.Logf("blocked pair visible after %v (interval %v)", took.Round(time.Millisecond), labInterval)
	// The pair page asks db's agent, which names the rule that drops web.
	if pair := f.get(t, "/agents/pair?source=web&target=db:5000"); !strings.Contains(pair, `data-cause="firewall-drop"`) || !strings.Contains(pair, "-s "+web.String()+"/32") {
		t.Errorf("pair page does not show db's firewall dropping web:\n%s", pair)
	}

	// The monitor stored web->db going down, with the doctor's cause from
	// db's side (asked through db's agent while the rule is there).
	var stored struct {
		Transitions []transition `json:"transitions"`
	}
	found := testnet.Poll(10*time.Second, func() bool {
		if err := json.Unmarshal([]byte(f.get(t, "/api/endpoints/web/db:5000")), &stored); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(stored.Transitions, func(tr transition) bool {
			return tr.To == "down" && tr.Class == "timeout" && tr.Diagnosis != nil && tr.Diagnosis.Cause == "firewall-drop"
		})
	})
	if !found {
		t.Errorf("the monitor did not store web->db going down (timeout, firewall-drop): %+v", stored)
	}

	rule.Remove(t)
	took = waitMatrix(t, f, 2*labInterval, "recovery", func(bad []string, filled int) bool {
		return filled == cells && len(bad) == 0
	})
	t.Logf("recovery visible after %v", took.Round(time.Millisecond))

	// The matrix page colours each cell and links to its history, which
	// holds the timeout; the monitor stored it under the agent's name.
	page := f.get(t, "/agents/")
	if !strings.Contains(page, `data-source="web" data-target="db:5000" data-class="open"`) || !strings.Contains(page, "/agents/pair?source=web&amp;target=db%3A5000") {
		t.Errorf("matrix page lacks the web->db cell or its link:\n%s", page)
	}
	if pair := f.get(t, "/agents/pair?source=web&target=db:5000"); !strings.Contains(pair, "<td>timeout</td>") || !strings.Contains(pair, "/api/endpoints/web/db:5000") {
		t.Errorf("pair page lacks the timeout in its history or the stored history link:\n%s", pair)
	}
}

type transition struct {
	To        string `json:"to"`
	Class     string `json:"class"`
	Diagnosis *struct {
		Cause string `json:"cause"`
	} `json:"diagnosis"`
}

// Server-side evidence comes from the target host's own namespace, and only
// with the token.
func TestFleetEvidenceAndAuth(t *testing.T) {
	f := newFleet(t)
	web, db := f.hosts[1], f.hosts[2]
	lo := db.Listen(t, "tcp", "127.0.0.1:6000")
	testnet.ServeOn(t, lo, testnet.HangUp)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: web.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := agent.NewClient(f.agentURL(2), labToken, hc)
	if err != nil {
		t.Fatal(err)
	}
	var ev doctor.HostEvidence
	dbPort := netip.AddrPortFrom(f.addrs[2], 6000)
	testnet.Poll(30*time.Second, func() bool { // the agent process may still be starting
		ev, err = c.Evidence(ctx, dbPort)
		return err == nil || ctx.Err() != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev.Host, "agent db (") || len(ev.Listening) != 1 || ev.Listening[0].Local.String() != "127.0.0.1:6000" {
		t.Fatalf("db's agent sees %+v, want db's one listener on 127.0.0.1:6000", ev)
	}
	if p := ev.Listening[0].Processes; len(p) != 1 || p[0].PID != os.Getpid() {
		t.Errorf("listener owned by %+v, want this test process (pid %d)", p, os.Getpid())
	}

	for _, tc := range []struct{ url, token string }{
		{f.agentURL(2) + agent.PathEvidence + "?addr=" + dbPort.String(), ""},
		{f.agentURL(2) + agent.PathEvidence + "?addr=" + dbPort.String(), "nope"},
		{f.agentURL(2) + agent.PathMetrics, ""},
		{f.hubURL + agent.PathTargets + "?agent=web", ""},
		{f.hubURL + agent.PathTargets + "?agent=web", labToken[1:]},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with token %q: %d, want 401", tc.url, tc.token, resp.StatusCode)
		}
	}
	bad, _ := agent.NewClient(f.agentURL(2), "nope", hc)
	if _, err := bad.Evidence(ctx, dbPort); !errors.Is(err, agent.ErrUnauthorized) {
		t.Errorf("evidence with a wrong token: %v, want ErrUnauthorized", err)
	}
}

// reach check on one host asks the agent on the target host and names the
// exact cause a client alone cannot see.
func TestFleetCheckAsksAgent(t *testing.T) {
	f := newFleet(t)
	web, db := f.hosts[1], f.hosts[2]
	testnet.ServeOn(t, db.Listen(t, "tcp", "127.0.0.1:6000"), testnet.HangUp) // loopback only
	testnet.ServeOn(t, db.Listen(t, "tcp", "0.0.0.0:6001"), testnet.HangUp)   // open, but rejected by db's firewall
	db.Iptables(t, "-I", "INPUT", "-p", "tcp", "--dport", "6001", "-j", "REJECT", "--reject-with", "tcp-reset")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hub := f.hubURL
	// The timeout also bounds each question to an agent (hub, then agent):
	// its answer lists the host's sockets with their processes, which under
	// -race on a loaded machine took over 1 s, and the evidence was lost (the
	// report said "context deadline exceeded"). The probes here end at once
	// (refused, reset), so a longer timeout costs a passing run nothing.
	check := func(port int, args ...string) doctor.Report {
		t.Helper()
		target := netip.AddrPortFrom(f.addrs[2], uint16(port)).String()
		out, err := web.Exec(append([]string{"env", "REACH_LAB_EXEC=1", "REACH_TOKEN=" + labToken, exe, "check", target, "--json", "--timeout", "5s"}, args...)...)
		var r doctor.Report
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			t.Fatalf("reach check %s %v: %v (exit: %v)\n%s", target, args, jerr, err, out)
		}
		return r
	}
	waitAdvertised(t, f, 2)
	for _, tc := range []struct {
		port int
		args []string
		want doctor.Cause
	}{
		{6000, []string{"--agent", f.agentURL(2)}, doctor.LoopbackOnly},
		{6000, []string{"--hub", hub}, doctor.LoopbackOnly},
		{6001, []string{"--agent", f.agentURL(2)}, doctor.FirewallReject},
	} {
		start := time.Now()
		r := check(tc.port, tc.args...)
		if took := time.Since(start); testing.Verbose() {
			t.Logf("check :%d %v took %v (report: %.0f ms)", tc.port, tc.args, took, r.DurationMS)
		}
		if r.Cause != tc.want || r.Confidence != doctor.Confirmed {
			// The host check says why the agent's evidence is missing.
			t.Errorf("check :%d %v: cause %s (%s), want %s confirmed\nfindings %+v\nchecks %+v", tc.port, tc.args, r.Cause, r.Confidence, tc.want, r.Findings, r.Checks)
		}
	}
	// Without the agent the client cannot confirm it.
	if r := check(6000); r.Cause == doctor.LoopbackOnly && r.Confidence == doctor.Confirmed {
		t.Errorf("without an agent the cause is confirmed as %s: the client cannot know that", r.Cause)
	}
	// A wrong token gets no evidence: check says so and still reports.
	out, _ := web.Exec("env", "REACH_LAB_EXEC=1", "REACH_TOKEN=wrong-token-0123456789", exe, "check", netip.AddrPortFrom(f.addrs[2], 6000).String(), "--agent", f.agentURL(2), "--timeout", "5s")
	if !strings.Contains(string(out), "unauthorized") {
		t.Errorf("check with a wrong token does not say the agent refused it:\n%s", out)
	}
}

// waitAdvertised waits until host i's agent answers and the hub knows it by
// the URL it advertised when it fetched its list (what --hub finds).
func waitAdvertised(t *testing.T, f *fleet, i int) {
	t.Helper()
	waitAgent(t, f, i)
	var agents []agent.AgentInfo
	if !testnet.Poll(30*time.Second, func() bool {
		if err := json.Unmarshal([]byte(f.getToken(t, agent.PathAgents)), &agents); err != nil {
			t.Fatal(err)
		}
		return agents[i].Agent == f.agentURL(i)
	}) {
		t.Fatalf("%s's agent never advertised %s: %+v", f.names[i], f.agentURL(i), agents)
	}
}

// A name whose two addresses live on two hosts, each with an agent: check
// gets each host's own view, tied to its address. With one agent stopped,
// the other's evidence still arrives and the stopped one is named as such.
func TestFleetCheckNameOnTwoHosts(t *testing.T) {
	f := newFleet(t)
	web, db, batch := f.hosts[1], f.hosts[2], f.hosts[3]
	testnet.ServeOn(t, db.Listen(t, "tcp", "127.0.0.1:6000"), testnet.HangUp)  // loopback only
	testnet.ServeOn(t, batch.Listen(t, "tcp", "0.0.0.0:6000"), testnet.HangUp) // open, but rejected by batch's firewall
	batch.Iptables(t, "-I", "INPUT", "-p", "tcp", "--dport", "6000", "-j", "REJECT", "--reject-with", "tcp-reset")
	ns := web.ServeDNS(t, f.addrs[1], map[string][]netip.Addr{"api.reach.test": {f.addrs[2], f.addrs[3]}})
	dbAP, batchAP := netip.AddrPortFrom(f.addrs[2], 6000).String(), netip.AddrPortFrom(f.addrs[3], 6000).String()
	waitAdvertised(t, f, 2)
	waitAdvertised(t, f, 3)
	// What reach check --hub builds, running on web.
	disc, err := agent.NewDiscovery(f.hubURL, labToken, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: web.DialContext}})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := endpoint.ParseEndpoint("api.reach.test:6000", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The agents' evidence must come within the check's timeout: generous,
	// as CI runs this on two cores busy with every other package's tests.
	const timeout = 3 * time.Second
	check := func() (*doctor.Report, string) {
		t.Helper()
		start := time.Now()
		r := doctor.Run(context.Background(), ep, doctor.Options{Timeout: timeout, Dial: web.DialContext, Enter: web.Do, Resolver: web.Resolver(ns), Remote: disc})
		if took := time.Since(start); took > 2*timeout+time.Second {
			t.Errorf("check took %v with timeout %v", took, timeout)
		}
		var b strings.Builder
		r.WriteText(&b, doctor.TextOptions{Width: 400}) // wide: no issue wraps
		if testing.Verbose() {
			t.Log("\n" + b.String())
		}
		return r, b.String()
	}
	finding := func(r *doctor.Report, addr string, c doctor.Cause) *doctor.Finding {
		for i, f := range r.Findings {
			if f.Addr == addr && f.Cause == c && f.Confidence == doctor.Confirmed {
				return &r.Findings[i]
			}
		}
		return nil
	}
	evidence := func(r *doctor.Report, addr string) doctor.EvidenceSource {
		for _, a := range r.Addresses {
			if a.Addr == addr && a.Evidence != nil {
				return *a.Evidence
			}
		}
		return doctor.EvidenceSource{}
	}

	r, text := check()
	if len(r.Addresses) != 2 {
		t.Fatalf("addresses %+v, want db's and batch's", r.Addresses)
	}
	if f := finding(r, dbAP, doctor.LoopbackOnly); f == nil || !strings.Contains(f.Evidence, "127.0.0.1:6000") || !strings.Contains(f.Evidence, "agent db (") {
		t.Errorf("no confirmed loopback-only for %s from db's agent\n%s", dbAP, text)
	}
	if f := finding(r, batchAP, doctor.FirewallReject); f == nil || !strings.Contains(f.Evidence, "REJECT") || !strings.Contains(f.Evidence, "agent batch (") {
		t.Errorf("no confirmed firewall-reject for %s from batch's agent\n%s", batchAP, text)
	}
	if finding(r, dbAP, doctor.FirewallReject) != nil || finding(r, batchAP, doctor.LoopbackOnly) != nil {
		t.Errorf("one host's evidence explains the other's address\n%s", text)
	}
	for addr, who := range map[string]string{dbAP: "agent db (" + f.agentURL(2) + ")", batchAP: "agent batch (" + f.agentURL(3) + ")"} {
		if got := evidence(r, addr); got.From != who || got.Failure != "" {
			t.Errorf("%s: evidence %+v, want from %s", addr, got, who)
		}
	}
	for _, want := range []string{dbAP + ": Server bound to loopback only [loopback-only, confirmed]", batchAP + ": A firewall rejects the connection on the target host"} {
		if !strings.Contains(text, want) {
			t.Errorf("the table lacks %q\n%s", want, text)
		}
	}

	// db's agent stops (by pid: the process this test started).
	f.agents[2].Process.Kill()
	f.agents[2].Wait()
	r, text = check()
	if finding(r, batchAP, doctor.FirewallReject) == nil {
		t.Errorf("with db's agent stopped, batch's evidence is lost\n%s", text)
	}
	if finding(r, dbAP, doctor.LoopbackOnly) != nil {
		t.Errorf("loopback-only still confirmed for %s without its agent\n%s", dbAP, text)
	}
	if got := evidence(r, dbAP); got.From != "agent db ("+f.agentURL(2)+")" || got.Failure != doctor.AgentUnreachable || !strings.Contains(got.Error, "connection refused") || !strings.Contains(got.Fix, "reach agent runs on "+f.addrs[2].String()) {
		t.Errorf("%s: evidence %+v, want db's agent unreachable (connection refused) with what to do", dbAP, got)
	}
	if !strings.Contains(strings.Join(r.Next, "\n"), "agent db ("+f.agentURL(2)+") gave no evidence for "+f.addrs[2].String()+" (unreachable") {
		t.Errorf("next steps do not name db's stopped agent: %q", r.Next)
	}
}

// waitAgent waits until host i's agent answers.
func waitAgent(t *testing.T, f *fleet, i int) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: f.hosts[0].DialContext}}
	var err error
	if !testnet.Poll(30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, f.agentURL(i)+agent.PathMetrics, nil)
		req.Header.Set("Authorization", "Bearer "+labToken)
		var resp *http.Response
		if resp, err = hc.Do(req); err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("agent %s does not answer: %v", f.names[i], err)
	}
}

// Agents report to a hub that requires client certificates; without one,
// nothing gets through, token or not.
func TestFleetMutualTLS(t *testing.T) {
	f := newFleetWith(t, fleetOptions{mTLS: true})
	waitMatrix(t, f, 30*time.Second, "every pair open over mTLS", func(bad []string, filled int) bool {
		return filled == 4*3 && len(bad) == 0
	})
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: f.hosts[1].DialContext, TLSClientConfig: f.web.Transport.(*http.Transport).TLSClientConfig.Clone()}}
	plain.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	req, _ := http.NewRequest(http.MethodGet, f.hubURL+agent.PathTargets+"?agent=web", nil)
	req.Header.Set("Authorization", "Bearer "+labToken)
	if resp, err := plain.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("hub answered %s to a client without a certificate", resp.Status)
	}
}

// Agents keep probing while the hub is down and deliver what they saw once
// it is back: a pair blocked and unblocked during the outage shows up in
// the stored history with the times it happened.
func TestFleetHubOutage(t *testing.T) {
	f := newFleet(t)
	waitMatrix(t, f, 30*time.Second, "every pair open", func(bad []string, filled int) bool {
		return filled == 4*3 && len(bad) == 0
	})
	f.hub.Process.Kill() // by pid: the hub process this test started
	f.hub.Wait()
	down := time.Now()
	web, db := f.addrs[1], f.hosts[2]
	rule := db.AddRule(t, "filter", fmt.Sprintf("-I INPUT -s %s/32 -p tcp -m tcp --dport %d -j DROP", web, labPort))
	time.Sleep(2 * labInterval) // the outage: agents buffer what they see
	rule.Remove(t)
	time.Sleep(labInterval)
	f.hub = f.hosts[0].Start(t, f.watch...)
	up := time.Now()
	f.waitHub(t)
	waitMatrix(t, f, 2*labInterval, "every pair open after the outage", func(bad []string, filled int) bool {
		return filled == 4*3 && len(bad) == 0
	})
	// State changes reach the store a moment after the results.
	type outageTransition struct {
		To    string    `json:"to"`
		Class string    `json:"class"`
		Time  time.Time `json:"time"`
	}
	var stored struct {
		Transitions []outageTransition `json:"transitions"`
	}
	found := testnet.Poll(10*time.Second, func() bool {
		if err := json.Unmarshal([]byte(f.get(t, "/api/endpoints/web/db:5000")), &stored); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(stored.Transitions, func(tr outageTransition) bool {
			return tr.To == "down" && tr.Class == "timeout" && tr.Time.After(down) && tr.Time.Before(up)
		})
	})
	if !found {
		t.Errorf("no stored web->db timeout from the outage (%v to %v): %+v", down.Format(time.TimeOnly), up.Format(time.TimeOnly), stored.Transitions)
	}
	var agents []agent.AgentInfo
	if err := json.Unmarshal([]byte(f.getToken(t, agent.PathAgents)), &agents); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if a.Dropped != 0 {
			t.Errorf("agent %s dropped %d results in a short outage", a.Name, a.Dropped)
		}
	}
}

// getToken is get for the agent protocol's token-guarded paths.
func (f *fleet) getToken(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.hubURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+labToken)
	resp, err := f.web.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return string(b)
}
