package monitor

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/internal/testnet"
)

// benchServeEnv makes the test binary an HTTPS server for
// BenchmarkWatchLayers (in a process of its own, so the monitor's CPU is
// measured alone): it serves "ok" on benchPorts loopback ports with the
// certificate and key files the variable names (CERT:KEY), prints the
// ports, and exits when its standard input closes.
const benchServeEnv = "REACH_BENCH_HTTPS_SERVE"

const benchPorts = 20

func init() {
	files := os.Getenv(benchServeEnv)
	if files == "" {
		return
	}
	certFile, keyFile, _ := strings.Cut(files, ":")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	for range benchPorts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
			TLSConfig: conf, ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: log.New(io.Discard, "", 0)} // tcp:// probes end handshakes early
		srv.SetKeepAlivesEnabled(false)
		go srv.ServeTLS(ln, "", "")
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the benchmark ends
	os.Exit(0)
}

// BenchmarkWatchLayers is issue 13's figure: reach watch's monitor with
// 1,000 https:// endpoints every 10 s on loopback (a TLS handshake with a
// certificate verified against a CA file, then GET / and its body), beside
// 1,000 tcp:// endpoints to the same servers, history in SQLite. The
// servers run in another process, so cpu%core is the monitor's alone
// (probes, TLS, store). After one interval of warm-up it measures
// REACH_BENCH_DURATION (default 30s). Run it with bench/watch-layers.
func BenchmarkWatchLayers(b *testing.B) {
	const n, interval = 1000, 10 * time.Second
	measure := 30 * time.Second
	if s := os.Getenv("REACH_BENCH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 10*time.Minute {
			b.Fatalf("REACH_BENCH_DURATION=%q: want a duration up to 10m", s)
		}
		measure = d
	}
	dir := b.TempDir()
	ca := testnet.NewCA(b, "reach bench CA")
	caFile := ca.WriteFile(b, dir)
	certFile, keyFile := testnet.WriteKeyPair(b, dir, "server", ca.Issue(b, testnet.Cert{Names: []string{"127.0.0.1"}}))
	ports := benchServers(b, certFile+":"+keyFile)

	for _, scheme := range []string{"tcp", "https"} {
		b.Run(scheme, func(b *testing.B) {
			var yaml strings.Builder
			yaml.WriteString("endpoints:\n")
			for i := range n {
				fmt.Fprintf(&yaml, "  - name: ep-%d\n    target: %s://127.0.0.1:%d\n    interval: 10s\n    timeout: 2s\n",
					i, scheme, ports[i%len(ports)])
				if scheme == "https" {
					fmt.Fprintf(&yaml, "    ca: %s\n    expect_body: ok\n", caFile)
				}
			}
			cfg, err := ParseConfig("bench.yaml", []byte(yaml.String()))
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				store, err := OpenStore(b.Context(), filepath.Join(b.TempDir(), "reach.db"))
				if err != nil {
					b.Fatal(err)
				}
				reg := prometheus.NewRegistry()
				m, err := New(b.Context(), cfg, Options{Store: store, Metrics: NewMetrics(reg)})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(b.Context())
				done := make(chan error)
				go func() { done <- m.Run(ctx) }()
				time.Sleep(interval) // every endpoint has started its cycle
				late0 := lateness(b, reg)
				cpu0, t0 := cpuTime(), time.Now()
				time.Sleep(measure)
				cpu, wall := cpuTime()-cpu0, time.Since(t0)
				late := lateness(b, reg).minus(late0)
				healthy := 0
				for _, s := range m.Statuses() {
					if s.Last.OK {
						healthy++
					}
				}
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				store.Close()
				b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu%core")
				b.ReportMetric(late.quantile(0.99)*1000, "lateness-p99-ms")
				b.ReportMetric(late.count/wall.Seconds(), "probes/s")
				b.ReportMetric(float64(healthy), "healthy")
				if healthy != n {
					b.Errorf("%d of %d endpoints healthy at the end", healthy, n)
				}
			}
		})
	}
}

// benchServers starts the HTTPS servers' process (this test binary, see
// benchServeEnv) and returns its ports; it is killed by pid at the end.
func benchServers(b *testing.B, files string) []int {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServeEnv+"="+files)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	var ports []int
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		p, err := strconv.Atoi(sc.Text())
		if err != nil {
			b.Fatalf("the servers' process said %q", sc.Text())
		}
		ports = append(ports, p)
	}
	if len(ports) != benchPorts {
		b.Fatalf("the servers' process gave %d ports", len(ports))
	}
	return ports
}
