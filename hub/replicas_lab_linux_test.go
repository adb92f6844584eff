package hub_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testdb"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
)

// replicaInterval is the replicas' --replica-interval: a replica silent
// this long is dead to the other, which must take over within two.
const replicaInterval = 3 * time.Second

// replicaLab is two reach watch --replica processes, each in a namespace
// of its own, on one PostgreSQL schema (reached through a proxy on each
// namespace's loopback), and two agents that know both.
type replicaLab struct {
	hosts   map[string]*netlab.Host
	addrs   map[string]netip.Addr
	watch   map[string][]string  // how each replica is started
	procs   map[string]*exec.Cmd // the running replicas, by host
	agents  map[string]*exec.Cmd
	db      *sql.DB
	servers map[string]net.Listener // each agent host's server on labPort

	mu         sync.Mutex
	deliveries map[int64]int // webhook deliveries by alert id
	alerts     []monitor.Alert
}

// proxyPostgres forwards connections to 127.0.0.1:5432 in h's namespace to
// PostgreSQL on the root namespace's loopback, where scripts/test runs it.
func proxyPostgres(t *testing.T, h *netlab.Host, to string) {
	ln := h.Listen(t, "tcp", "127.0.0.1:5432")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.DialTimeout("tcp", to, 5*time.Second)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, u)
			}()
		}
	}()
}

func newReplicaLab(t *testing.T) *replicaLab {
	netlab.Require(t)
	dsn := testdb.PostgresSchema(t) // its search_path names a fresh schema
	pg, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	lab := netlab.New(t)
	l := &replicaLab{hosts: map[string]*netlab.Host{}, addrs: map[string]netip.Addr{},
		watch: map[string][]string{}, procs: map[string]*exec.Cmd{}, agents: map[string]*exec.Cmd{},
		servers: map[string]net.Listener{}, deliveries: map[int64]int{}}
	names := []string{"hub1", "hub2", "web", "db"}
	var hs []*netlab.Host
	for _, n := range names {
		h := lab.Host(n)
		l.hosts[n] = h
		hs = append(hs, h)
	}
	for i, a := range lab.LAN(hs...) {
		l.addrs[names[i]] = a
	}
	for _, n := range []string{"web", "db"} {
		l.serve(t, n)
	}
	// The webhook receiver: the same port on each replica's loopback.
	recv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a monitor.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		l.deliveries[a.ID]++
		l.alerts = append(l.alerts, a)
		l.mu.Unlock()
	})
	hookLn := l.hosts["hub1"].Listen(t, "tcp", "127.0.0.1:0")
	hookPort := hookLn.Addr().(*net.TCPAddr).Port
	for _, ln := range []net.Listener{hookLn,
		l.hosts["hub2"].Listen(t, "tcp", "127.0.0.1:"+strconv.Itoa(hookPort))} {
		srv := &http.Server{Handler: recv}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}

	dir := t.TempDir()
	conf := fmt.Sprintf(`alerts: {rise: 1, fall: 1, webhook: "http://127.0.0.1:%d/"}
defaults: {interval: 1s, timeout: 500ms}
endpoints:
  - {name: web-svc, target: "%s:%d"}
  - {name: db-svc, target: "%s:%d"}
  - {name: web-agent, target: "%s:%d"}
  - {name: db-agent, target: "%s:%d"}
agents:
  token_file: %s
  interval: 1s
  timeout: 500ms
  hosts:
    - {name: web, addr: %s}
    - {name: db, addr: %s}
  groups:
    - {name: all, hosts: [web, db], ports: [%d]}
`, hookPort, l.addrs["web"], labPort, l.addrs["db"], labPort, l.addrs["web"], agentPort, l.addrs["db"], agentPort,
		filepath.Join(dir, "token"), l.addrs["web"], l.addrs["db"], labPort)
	for name, body := range map[string]string{"token": labToken + "\n", "reach.yaml": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	local := *pg
	local.Host = "127.0.0.1:5432"
	for _, n := range []string{"hub1", "hub2"} {
		proxyPostgres(t, l.hosts[n], pg.Host)
		l.watch[n] = []string{"env", "REACH_LAB_EXEC=1", exe, "watch", "-c", filepath.Join(dir, "reach.yaml"),
			"--listen", netip.AddrPortFrom(l.addrs[n], hubPort).String(), "--store", local.String(),
			"--replica", "--replica-interval", replicaInterval.String(), "--no-doctor", "--no-net-watch"}
		l.start(t, n)
	}
	l.db, err = sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.db.Close() })
	testnet.Eventually(t, 60*time.Second, "both replicas live", func() bool {
		return l.poll(`SELECT COUNT(*) FROM replicas WHERE heartbeat > `+nowMS+` - $1`,
			replicaInterval.Milliseconds()) == 2
	})
	// web prefers hub1, db hub2: both replicas take reports.
	hub := func(n string) string { return "http://" + netip.AddrPortFrom(l.addrs[n], hubPort).String() }
	for n, hubs := range map[string]string{"web": hub("hub1") + "," + hub("hub2"), "db": hub("hub2") + "," + hub("hub1")} {
		l.agents[n] = l.hosts[n].Start(t, "env", "REACH_LAB_EXEC=1", "REACH_TOKEN="+labToken, exe, "agent",
			"--hub", hubs, "--name", n, "--listen", netip.AddrPortFrom(l.addrs[n], agentPort).String(),
			"--report-every", "300ms", "--no-net-watch")
	}
	return l
}

const nowMS = `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`

// serve (re)starts host n's server on labPort.
func (l *replicaLab) serve(t *testing.T, n string) {
	ln := l.hosts[n].Listen(t, "tcp", netip.AddrPortFrom(l.addrs[n], labPort).String())
	testnet.ServeOn(t, ln, testnet.HangUp)
	l.servers[n] = ln
}

func (l *replicaLab) start(t *testing.T, n string) {
	l.procs[n] = l.hosts[n].Start(t, l.watch[n]...)
}

// kill ends replica n with SIGKILL, by pid: no goodbye to the others.
func (l *replicaLab) kill(t *testing.T, n string) {
	p := l.procs[n]
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", n, p.Process.Pid, err)
	}
	p.Wait()
}

func (l *replicaLab) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := l.db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// poll is count for a poll: -1 while the query fails (no schema yet).
func (l *replicaLab) poll(q string, args ...any) int {
	var n int
	if err := l.db.QueryRow(q, args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// alertsHolder is the host whose replica holds the alerts job, and when
// it last renewed it (the database's clock, ms).
func (l *replicaLab) alertsHolder(t *testing.T) (host string, renewed int64) {
	t.Helper()
	var holder string
	if err := l.db.QueryRow(`SELECT holder, renewed FROM leases WHERE name = 'alerts'`).Scan(&holder, &renewed); err != nil {
		return "", 0
	}
	for n, p := range l.procs {
		if p.ProcessState == nil && strings.Contains(holder, "/"+strconv.Itoa(p.Process.Pid)+"/") {
			return n, renewed
		}
	}
	return "", renewed
}

// killHolder kills the replica that holds the alerts and checks the other
// takes them within two intervals of the dead one's last renewal.
func (l *replicaLab) killHolder(t *testing.T, when string) (killed string) {
	t.Helper()
	var renewed int64
	testnet.Eventually(t, 30*time.Second, "a live replica holds the alerts", func() bool {
		killed, renewed = l.alertsHolder(t)
		return killed != ""
	})
	l.kill(t, killed)
	_, renewed = l.alertsHolder(t) // its last renewal, now that it can renew no more
	var other string
	var acquired int64
	testnet.Eventually(t, 60*time.Second, "the other replica takes the alerts", func() bool {
		other, _ = l.alertsHolder(t)
		if other == "" || other == killed {
			return false
		}
		return l.db.QueryRow(`SELECT acquired FROM leases WHERE name = 'alerts'`).Scan(&acquired) == nil
	})
	took := time.Duration(acquired-renewed) * time.Millisecond
	t.Logf("%s: killed %s; %s took the alerts %v after its last renewal", when, killed, other, took)
	if took > 2*replicaInterval {
		t.Errorf("%s: takeover took %v after the holder's last renewal, more than two intervals (%v)",
			when, took, 2*replicaInterval)
	}
	return killed
}

// checkProbingTakenOver checks the endpoints of reach.yaml went on being
// probed after a replica was killed at killedAt: for each, the gap between
// its last sample stored before and its first after is within two
// intervals (the others see it dead after one, and look every quarter),
// plus the endpoints' own interval and the second of results the dead one
// had not written yet. The samples' times are the probes' own, so a
// loaded machine delays the check, not the gap.
func (l *replicaLab) checkProbingTakenOver(t *testing.T, when string, killedAt time.Time) {
	t.Helper()
	const endpointInterval, unwritten = time.Second, time.Second // reach.yaml's defaults; the flush
	var ep string
	var gap int64
	testnet.Eventually(t, 30*time.Second, "every endpoint probed since the kill", func() bool {
		return l.db.QueryRow(`SELECT endpoint, gap FROM (SELECT endpoint, ts,
			ts - LAG(ts) OVER (PARTITION BY endpoint ORDER BY ts) AS gap FROM samples WHERE source = 'local') g
			WHERE ts > $1 AND gap IS NOT NULL ORDER BY gap DESC LIMIT 1`, killedAt.UnixMilli()).Scan(&ep, &gap) == nil &&
			l.count(t, `SELECT COUNT(DISTINCT endpoint) FROM samples WHERE source = 'local' AND ts > $1`,
				killedAt.UnixMilli()) == l.count(t, `SELECT COUNT(DISTINCT endpoint) FROM samples WHERE source = 'local'`)
	})
	took := time.Duration(gap) * time.Millisecond
	t.Logf("%s: the longest gap in an endpoint's probes across the kill: %v (%s)", when, took, ep)
	if limit := 2*replicaInterval + endpointInterval + unwritten; took > limit {
		t.Errorf("%s: %s went unprobed for %v across the kill, more than two intervals and its own (%v)",
			when, ep, took, limit)
	}
}

// Issue 16's proof: two replicas, agents in namespaces. Kill either replica
// by pid during steady probing and during an outage: no sample doubled, no
// state change lost, each alert delivered exactly once, takeover within two
// intervals, and the agents' buffered results all stored.
func TestReplicasKillEither(t *testing.T) {
	l := newReplicaLab(t)
	samples := func(source string) int {
		return l.count(t, `SELECT COUNT(*) FROM samples WHERE source = $1`, source)
	}
	testnet.Eventually(t, 60*time.Second, "steady: results from both agents and both replicas' probes", func() bool {
		return samples("web") >= 5 && samples("db") >= 5 && samples("local") >= 8
	})

	// Each replica's matrix shows both agents' pairs, whichever replica
	// each reports to (web to hub1, db to hub2).
	for _, n := range []string{"hub1", "hub2"} {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: l.hosts[n].DialContext}}
		u := "http://" + netip.AddrPortFrom(l.addrs[n], hubPort).String() + "/agents/matrix.json"
		testnet.Eventually(t, 30*time.Second, n+"'s matrix shows every pair", func() bool {
			resp, err := c.Get(u)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var m struct {
				Cells [][]*struct {
					Class string
					Stale bool
				}
			}
			if json.NewDecoder(resp.Body).Decode(&m) != nil {
				return false
			}
			filled := 0
			for _, row := range m.Cells {
				for _, c := range row {
					if c != nil && c.Class == "open" && !c.Stale { // current, whichever replica stored it
						filled++
					}
				}
			}
			return filled == 2
		})
	}

	// During steady probing.
	killedAt := time.Now()
	first := l.killHolder(t, "steady")
	before := map[string]int{"web": samples("web"), "db": samples("db"), "local": samples("local")}
	testnet.Eventually(t, 60*time.Second, "results keep coming through the replica left", func() bool {
		return samples("web") >= before["web"]+5 && samples("db") >= before["db"]+5 &&
			samples("local") >= before["local"]+8
	})
	l.checkProbingTakenOver(t, "steady", killedAt)
	l.start(t, first)
	testnet.Eventually(t, 60*time.Second, "the killed replica is back", func() bool {
		return l.poll(`SELECT COUNT(*) FROM replicas WHERE heartbeat > `+nowMS+` - $1`,
			replicaInterval.Milliseconds()) == 2
	})

	// During an outage: db's server stops; the pair web→db and the
	// endpoint db-svc go down; the holder of the alerts is killed.
	l.servers["db"].Close()
	down := func() bool {
		return l.count(t, `SELECT COUNT(*) FROM transitions WHERE to_state = 'down'
			AND ((source = 'web' AND endpoint LIKE 'db%') OR (source = 'local' AND endpoint = 'db-svc'))`) == 2
	}
	testnet.Eventually(t, 60*time.Second, "the outage seen: two state changes to down", down)
	killedAt = time.Now()
	l.killHolder(t, "outage")
	l.serve(t, "db")
	testnet.Eventually(t, 60*time.Second, "back up: both up again", func() bool {
		return l.count(t, `SELECT COUNT(*) FROM transitions WHERE to_state = 'up' AND from_state = 'down'
			AND ((source = 'web' AND endpoint LIKE 'db%') OR (source = 'local' AND endpoint = 'db-svc'))`) == 2
	})
	l.checkProbingTakenOver(t, "outage", killedAt)
	testnet.Eventually(t, 60*time.Second, "every alert sent", func() bool {
		return l.count(t, `SELECT COUNT(*) FROM outbox WHERE sent IS NULL`) == 0
	})

	// Stop the agents, then the replicas: what is stored is what counts
	// (whatever an agent still held is not in agent_seqs either).
	for _, a := range l.agents {
		a.Process.Signal(syscall.SIGKILL)
		a.Wait()
	}
	for n, p := range l.procs {
		if p.ProcessState == nil {
			l.kill(t, n)
		}
	}

	// No sample doubled.
	if n := l.count(t, `SELECT COUNT(*) FROM (SELECT source, endpoint, ts FROM samples
		GROUP BY source, endpoint, ts HAVING COUNT(*) > 1) d`); n != 0 {
		t.Errorf("%d samples stored twice", n)
	}
	// No agent result lost: each agent's numbers run from 1 to next-1,
	// and the store has that many of its results.
	for _, n := range []string{"web", "db"} {
		var next int64
		if err := l.db.QueryRow(`SELECT next FROM agent_seqs WHERE agent = $1`, n).Scan(&next); err != nil {
			t.Fatal(err)
		}
		if got := samples(n); int64(got) != next-1 {
			t.Errorf("agent %s: %d results stored of numbers 1..%d: %d lost", n, got, next-1, next-1-int64(got))
		}
	}
	// No state change lost or doubled: each pair's changes chain, and the
	// outage's pairs went up, down, up once each.
	rows, err := l.db.Query(`SELECT source, endpoint, from_state, to_state FROM transitions ORDER BY source, endpoint, ts, id`)
	if err != nil {
		t.Fatal(err)
	}
	chains := map[string][]string{}
	for rows.Next() {
		var src, ep, from, to string
		if err := rows.Scan(&src, &ep, &from, &to); err != nil {
			t.Fatal(err)
		}
		k := src + "/" + ep
		if c := chains[k]; len(c) > 0 && !strings.HasSuffix(c[len(c)-1], "→"+from) {
			t.Errorf("%s: %s follows %s: a state change lost or doubled", k, from+"→"+to, c[len(c)-1])
		}
		chains[k] = append(chains[k], from+"→"+to)
	}
	rows.Close()
	want := "unknown→up up→down down→up"
	for _, k := range []string{"local/db-svc", "web/db:" + strconv.Itoa(labPort)} {
		if got := strings.Join(chains[k], " "); got != want {
			t.Errorf("%s changed %q, want %q", k, got, want)
		}
	}
	// Each alert delivered once: one per change (but unknown→up), each id once.
	alerts := l.count(t, `SELECT COUNT(*) FROM transitions WHERE NOT (from_state = 'unknown' AND to_state = 'up')`)
	queued := l.count(t, `SELECT COUNT(*) FROM outbox`)
	l.mu.Lock()
	defer l.mu.Unlock()
	if alerts != queued || len(l.deliveries) != queued {
		t.Errorf("%d alerting state changes, %d alerts queued, %d delivered: want them equal", alerts, queued, len(l.deliveries))
	}
	for id, n := range l.deliveries {
		if id == 0 || n != 1 {
			t.Errorf("alert %d delivered %d times, want once", id, n)
		}
	}
	var seen []string
	for _, a := range l.alerts {
		seen = append(seen, fmt.Sprintf("%d %s/%s %s", a.ID, a.Source, a.Endpoint, a.State))
	}
	t.Logf("%d alerts, each delivered once: %s", len(l.deliveries), strings.Join(seen, "; "))
}
