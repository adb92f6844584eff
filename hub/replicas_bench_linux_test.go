package hub

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/internal/testdb"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// BenchmarkHubReplicas is issue 16's load: 1,000 agents × 100 targets every
// 10 s (10,000 results/s), reported every 2 s as real agents do (500
// sequenced batches of 20 a second, each agent posting its next batch only
// once the last was answered), half the agents to each of two reach watch
// --replica processes (this test binary run as reach) on one PostgreSQL
// (REACH_TEST_POSTGRES, a fresh schema). Each op is REACH_BENCH_SECONDS
// (default 60) of load, the first 10 s of it warm-up. Reported: each
// replica's CPU (% of one core) and RSS, the rate samples were stored at,
// results not stored (failed posts, results the replicas dropped), and the
// store's lag: how long a post took to be answered (a replica answers once
// the store has the batch), p50 and p99, and the age of the newest stored
// sample at each look, every 10 s, and the rate of the slowest 10 s.
//
//	REACH_TEST_POSTGRES=... go test -run '^$' -bench 'HubReplicas$' -benchtime 1x ./hub/
//
// REACH_BENCH_HEAPPROFILE=/tmp/heap-%d.pprof has each replica write its
// heap profile there every 30 s (REACH_BENCH_CPUPROFILE: its CPU profile
// of the first 40 s).
func BenchmarkHubReplicas(b *testing.B) {
	seconds, _ := strconv.Atoi(os.Getenv("REACH_BENCH_SECONDS"))
	run := time.Duration(max(seconds, 20)) * time.Second
	const agents, perAgent, interval, report = 1000, 100, 10 * time.Second, 2 * time.Second
	const warm = 10 * time.Second

	if os.Getenv("REACH_TEST_POSTGRES") == "" {
		b.Skip("REACH_TEST_POSTGRES not set; run scripts/pg-start and export its DSN")
	}
	store := testdb.PostgresSchema(b) // a fresh schema, dropped after
	db, err := sql.Open("pgx", store)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()

	// The fleet: ten groups of 100 hosts on one port (99 peers each) and
	// one pair per host: 100 targets each.
	dir := b.TempDir()
	var conf strings.Builder
	fmt.Fprintf(&conf, "alerts: {rise: 2, fall: 3}\nagents:\n  token_file: %s\n  interval: %v\n  hosts:\n",
		filepath.Join(dir, "token"), interval)
	names := make([]string, agents)
	for i := range agents {
		names[i] = fmt.Sprintf("host-%d", i)
		fmt.Fprintf(&conf, "    - {name: %s, addr: %s}\n", names[i], netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)}))
	}
	conf.WriteString("  groups:\n")
	for g := range agents / 100 {
		fmt.Fprintf(&conf, "    - {name: g%d, hosts: [%s], ports: [5432]}\n", g, strings.Join(names[g*100:(g+1)*100], ", "))
	}
	conf.WriteString("  pairs:\n")
	for _, n := range names {
		fmt.Fprintf(&conf, "    - {from: %s, to: \"198.19.0.1:443\"}\n", n)
	}
	for name, body := range map[string]string{"token": testToken + "\n", "reach.yaml": conf.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cfg, err := loadBenchHub(filepath.Join(dir, "reach.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	lists, err := cfg.ProbeLists()
	if err != nil {
		b.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	type replica struct {
		cmd *exec.Cmd
		url string
	}
	var reps []replica
	for range 2 {
		cmd := exec.Command(exe, "watch", "-c", filepath.Join(dir, "reach.yaml"), "--listen", "127.0.0.1:0",
			"--store", store, "--replica", "--replica-interval", "2s", "--no-doctor", "--no-net-watch",
			// Every simulated agent comes from 127.0.0.1: one client to the caps.
			"--max-conns", "4096", "--max-conns-per-client", "4096")
		cmd.Env = append(os.Environ(), "REACH_LAB_EXEC=1")
		errs, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
		url := make(chan string, 1)
		go func() {
			re := regexp.MustCompile(`dashboard (http://127\.0\.0\.1:\d+)/`)
			sc := bufio.NewScanner(errs)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					url <- m[1]
				}
				if os.Getenv("REACH_BENCH_LOG") != "" {
					fmt.Fprintln(os.Stderr, sc.Text())
				}
			}
		}()
		select {
		case u := <-url:
			reps = append(reps, replica{cmd: cmd, url: u})
		case <-time.After(60 * time.Second):
			b.Fatal("a replica did not start within 60 s")
		}
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: agents}}
	var posted, failed, notStored atomic.Int64
	var latMu sync.Mutex
	var lats []time.Duration
	measuring := atomic.Bool{}
	var whyMu sync.Mutex
	whys := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var wg sync.WaitGroup
	b.ResetTimer()
	for i, n := range names {
		pl := lists[n]
		hub := reps[i%2].url
		wg.Go(func() {
			runID := time.Now().UnixNano()
			var seq uint64 = 1
			var pending []agent.Result
			next := 0
			tick := time.NewTicker(report)
			defer tick.Stop()
			// Agents start spread over the report period.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i) * report / agents):
			}
			for {
				now := time.Now()
				for range perAgent * int(report) / int(interval) {
					t := pl.Targets[next%len(pl.Targets)]
					next++
					pending = append(pending, agent.Result{Target: t.ID, Addr: t.Addr, Class: probe.Open,
						RTT: agent.Duration(180 * time.Microsecond), Time: now})
				}
				n := min(len(pending), agent.MaxBatch)
				body, _ := json.Marshal(agent.Batch{Agent: pl.Agent, Results: pending[:n], Run: runID, Seq: seq})
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hub+agent.PathResults, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if ctx.Err() != nil {
					return
				}
				posted.Add(int64(n))
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(int64(n)) // kept, as an agent keeps them, and sent again
					why := "error"
					if err == nil {
						why = resp.Status
					} else {
						why = err.Error()
						why = why[strings.LastIndex(why, ": ")+1:]
					}
					whyMu.Lock()
					whys[why]++
					whyMu.Unlock()
				} else {
					pending, seq = pending[n:], seq+uint64(n)
					if measuring.Load() {
						latMu.Lock()
						lats = append(lats, time.Since(t0))
						latMu.Unlock()
					}
				}
				if len(pending) > agent.DefaultBuffer/agents {
					notStored.Add(int64(len(pending) - agent.DefaultBuffer/agents))
					pending = pending[len(pending)-agent.DefaultBuffer/agents:]
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}

	// Warm up, then measure until the end.
	time.Sleep(warm)
	measuring.Store(true)
	cpu0 := make([]time.Duration, len(reps))
	for i, r := range reps {
		cpu0[i] = procCPU(b, r.cmd.Process.Pid)
	}
	count := func() (n int64) {
		db.QueryRow(`SELECT COUNT(*) FROM samples`).Scan(&n)
		return n
	}
	stored0, t0 := count(), time.Now()
	var ages []time.Duration
	// The rate of each 10 s, so a store that falls behind as its tables
	// grow shows in the slowest window, not only in the mean.
	slowest, last, lastAt := -1.0, stored0, t0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			var newest int64
			if db.QueryRow(`SELECT COALESCE(MAX(ts), 0) FROM samples`).Scan(&newest) == nil && newest > 0 {
				ages = append(ages, time.Since(time.UnixMilli(newest)))
			}
			n, at := count(), time.Now()
			if r := float64(n-last) / at.Sub(lastAt).Seconds(); slowest < 0 || r < slowest {
				slowest = r
			}
			last, lastAt = n, at
		}
	}
	wall := time.Since(t0)
	stored := count() - stored0
	b.StopTimer()
	for i, r := range reps {
		cpu := procCPU(b, r.cmd.Process.Pid) - cpu0[i]
		rss, hwm := procRSS(b, r.cmd.Process.Pid)
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), fmt.Sprintf("replica%d-core%%", i+1))
		b.ReportMetric(float64(rss)/1024, fmt.Sprintf("replica%d-rss-MiB", i+1))
		b.ReportMetric(float64(hwm)/1024, fmt.Sprintf("replica%d-peak-rss-MiB", i+1))
		dropped := scrape(b, r.url, "reach_store_dropped_samples_total")
		b.ReportMetric(dropped, fmt.Sprintf("replica%d-dropped", i+1))
	}
	wg.Wait()
	b.ReportMetric(float64(stored)/wall.Seconds(), "stored/s")
	if slowest >= 0 {
		b.ReportMetric(slowest, "slowest-10s-stored/s")
	}
	b.ReportMetric(float64(failed.Load()), "failed-posted-results")
	b.ReportMetric(float64(notStored.Load()), "lost-results")
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(lats[len(lats)/2].Seconds()*1000, "post-p50-ms")
		b.ReportMetric(lats[len(lats)*99/100].Seconds()*1000, "post-p99-ms")
	}
	slices.Sort(ages)
	if len(ages) > 0 {
		b.ReportMetric(ages[len(ages)-1].Seconds()*1000, "newest-sample-age-max-ms")
	}
	if len(whys) > 0 {
		b.Logf("failed posts: %v", whys)
	}
	var dups int64
	db.QueryRow(`SELECT COUNT(*) FROM (SELECT source, endpoint, ts FROM samples
		GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d`).Scan(&dups)
	b.ReportMetric(float64(dups), "doubled")
	b.Logf("%v of load after %v warm-up: %d results stored (%.0f/s), %d posted", wall.Round(time.Second), warm,
		stored, float64(stored)/wall.Seconds(), posted.Load())
}

// loadBenchHub reads the agents: section of a reach.yaml.
func loadBenchHub(path string) (*Config, error) {
	mc, err := monitor.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return FromMonitorConfig(mc)
}

// procCPU is a process's user and system time so far.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// procRSS is a process's resident set and its peak, in KiB.
func procRSS(b *testing.B, pid int) (rss, hwm int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			hwm, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return rss, hwm
}

// scrape sums a metric's series on a watch's /metrics.
func scrape(b *testing.B, base, name string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}
