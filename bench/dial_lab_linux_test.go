package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

var naive = flag.Bool("naive", false, "also measure a plain dial of a dropped primary (waits out the kernel's SYN retries, about 2 minutes)")

// noEject keeps every dial paying for the failing primary, so the benchmark
// measures failover rather than ejection.
var noEject = dial.Ejection{Consecutive: -1}

// abort closes with a reset: no TIME_WAIT, so long runs keep their ports.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// listen serves on addr inside h, reading until each client goes away (so
// the client closes first), and returns the address.
func listen(b *testing.B, h *netlab.Host, addr string) netip.AddrPort {
	return testnet.ServeOn(b, h.Listen(b, "tcp", addr), testnet.Drain)
}

// refusing returns an address inside h that we listened on and closed.
func refusing(b *testing.B, h *netlab.Host, addr string) netip.AddrPort {
	return testnet.Closed(h.Listen(b, "tcp", addr))
}

// BenchmarkFailoverRefused: the primary refuses, the secondary is up. Each
// iteration makes, back to back so a busy host weighs on all alike, a plain
// dial of the secondary ("direct"), a dial through the dialer that pays the
// refused attempt and fails over ("dialer"), and one through a dialer with
// default ejection, which skips the primary after 5 failures ("ejecting").
// All dial from inside the client namespace.
func BenchmarkFailoverRefused(b *testing.B) {
	p := netlab.New(b).Pair()
	for _, where := range []string{"loopback", "veth"} {
		b.Run(where, func(b *testing.B) {
			var up, down netip.AddrPort
			if where == "loopback" { // the client namespace's own loopback
				up = listen(b, p.Client, "127.0.0.1:0")
				down = refusing(b, p.Client, "127.0.0.1:0")
			} else {
				up = listen(b, p.Server, netip.AddrPortFrom(p.ServerAddr, 0).String())
				down = refusing(b, p.Server, netip.AddrPortFrom(p.ServerAddr, 0).String())
			}
			eps := []endpoint.Endpoint{endpoint.FromAddrPort(down), endpoint.FromAddrPort(up)}
			failover := dial.New(eps, dial.Options{Dial: p.Client.DialContext, Eject: noEject})
			ejecting := dial.New(eps, dial.Options{Dial: p.Client.DialContext})
			var direct, viaDialer, viaEjecting time.Duration
			timed := func(total *time.Duration, fn func() (net.Conn, error)) {
				start := time.Now()
				c, err := fn()
				*total += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				abort(c)
			}
			for b.Loop() {
				timed(&direct, func() (net.Conn, error) { return p.Client.DialContext(b.Context(), "tcp", up.String()) })
				timed(&viaDialer, func() (net.Conn, error) { return failover.DialContext(b.Context()) })
				timed(&viaEjecting, func() (net.Conn, error) { return ejecting.DialContext(b.Context()) })
			}
			us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(us(direct), "direct-µs")
			b.ReportMetric(us(viaDialer), "dialer-µs")
			b.ReportMetric(us(viaEjecting), "ejecting-µs")
			b.ReportMetric(us(viaDialer-direct), "overhead-µs")
		})
	}
}

// BenchmarkDropPrimary: a firewall drops the primary's SYNs, the secondary is
// up. Time to a connection with race (default 250ms attempt delay), ordered
// with a 3s attempt timeout, and (with -naive) a plain dial of the primary
// first, which waits for the kernel's SYN retries.
func BenchmarkDropPrimary(b *testing.B) {
	p := netlab.New(b).Pair()
	up := listen(b, p.Server, netip.AddrPortFrom(p.ServerAddr, 0).String())
	primary := netip.AddrPortFrom(p.Server.AddAddr(b, p.ServerAddr), up.Port())
	p.Server.Iptables(b, "-A", "INPUT", "-d", primary.Addr().String(), "-p", "tcp", "-j", "DROP")
	eps := []endpoint.Endpoint{endpoint.FromAddrPort(primary), endpoint.FromAddrPort(up)}
	for _, tc := range []struct {
		name string
		opt  dial.Options
	}{
		{"race", dial.Options{Policy: dial.Race, Timeout: 3 * time.Second}},
		{"ordered-3s", dial.Options{Timeout: 3 * time.Second}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			opt := tc.opt
			opt.Dial, opt.Eject = p.Client.DialContext, noEject
			d := dial.New(eps, opt)
			for b.Loop() {
				c, err := d.DialContext(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				abort(c)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/connect")
		})
	}
	b.Run("naive", func(b *testing.B) {
		if !*naive {
			b.Skip("pass -naive to wait out the kernel's SYN retries")
		}
		for b.Loop() {
			_, err := p.Client.DialContext(context.Background(), "tcp", primary.String())
			if class, _ := probe.Classify(err); class != probe.Timeout {
				b.Fatalf("primary: %v (%s), want the kernel's timeout", err, class)
			}
			c, err := p.Client.DialContext(context.Background(), "tcp", up.String())
			if err != nil {
				b.Fatal(err)
			}
			abort(c)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/connect")
	})
}

// flapCounts tallies a flapping run.
type flapCounts struct {
	mu      sync.Mutex
	ok, cut int
	failed  map[probe.Class]int
	odd     []error // failures that are not a classified *dial.Error
	lat     []time.Duration
}

// BenchmarkFlappingServer: the server is up 1s, down 1s, for 20s, while 50
// clients share one dialer and dial in a loop (10ms apart). Reports the
// fraction of dials that connect, with a single attempt per dial and with
// retries (100ms backoff up to 1s, each dial bounded by 5s).
func BenchmarkFlappingServer(b *testing.B) {
	const (
		clients = 50
		period  = time.Second
		cycles  = 10
		pause   = 10 * time.Millisecond
	)
	for _, tc := range []struct {
		name string
		opt  dial.Options
	}{
		{"single-attempt", dial.Options{Timeout: time.Second}},
		{"retry-backoff", dial.Options{Timeout: time.Second, Retries: -1, Backoff: dial.Backoff{Initial: 100 * time.Millisecond, Max: time.Second}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				p := netlab.New(b).Pair()
				port := refusing(b, p.Server, netip.AddrPortFrom(p.ServerAddr, 0).String()).Port()
				addr := netip.AddrPortFrom(p.ServerAddr, port)
				opt := tc.opt
				opt.Dial = p.Client.DialContext
				d := dial.New([]endpoint.Endpoint{endpoint.FromAddrPort(addr)}, opt)
				run, cancel := context.WithTimeout(b.Context(), 2*cycles*period)
				flapErr := make(chan error, 1)
				go func() { flapErr <- flap(run, b, p.Server, addr, period) }()
				counts := &flapCounts{failed: map[probe.Class]int{}}
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() { dialLoop(run, d, counts, pause) })
				}
				wg.Wait()
				cancel()
				if err := <-flapErr; err != nil {
					b.Fatal(err)
				}
				if len(counts.odd) > 0 {
					b.Fatalf("%d failures not classified, e.g. %v", len(counts.odd), counts.odd[0])
				}
				if counts.failed[probe.LocalError] > 0 {
					b.Fatalf("%d local errors: the benchmark itself ran out of something", counts.failed[probe.LocalError])
				}
				total := counts.ok + sum(counts.failed)
				b.ReportMetric(100*float64(counts.ok)/float64(total), "%ok")
				b.ReportMetric(float64(total), "dials")
				b.ReportMetric(float64(counts.failed[probe.Refused]), "refused")
				b.ReportMetric(float64(counts.failed[probe.Timeout]+counts.failed[probe.Reset]+counts.failed[probe.ClosedByPeer]), "other-classified")
				slices.Sort(counts.lat)
				if n := len(counts.lat); n > 0 {
					b.ReportMetric(float64(counts.lat[n/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(counts.lat[n*99/100].Microseconds())/1000, "p99-ms")
				}
			}
		})
	}
}

func sum(m map[probe.Class]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// flap serves on addr for period, closes for period, until ctx ends.
func flap(ctx context.Context, b *testing.B, h *netlab.Host, addr netip.AddrPort, period time.Duration) error {
	for ctx.Err() == nil {
		var ln net.Listener
		err := h.Do(func() (err error) {
			ln, err = net.Listen("tcp", addr.String())
			return err
		})
		if err != nil {
			return fmt.Errorf("flap: listen %v: %w", addr, err)
		}
		testnet.ServeOn(b, ln, testnet.Drain)
		sleepCtx(ctx, period)
		ln.Close()
		sleepCtx(ctx, period)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// dialLoop dials until ctx ends, pausing between dials, and counts outcomes.
func dialLoop(ctx context.Context, d *dial.Dialer, counts *flapCounts, pause time.Duration) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		c, err := d.DialContext(dctx)
		lat := time.Since(start)
		cancel()
		counts.mu.Lock()
		var de *dial.Error
		switch {
		case err == nil:
			counts.ok++
			counts.lat = append(counts.lat, lat)
			abort(c)
		case ctx.Err() != nil: // the run ended mid-dial
			counts.cut++
		case !errors.As(err, &de) || len(de.Last) == 0:
			counts.odd = append(counts.odd, err)
		default:
			class := de.Last[0].Class
			if !slices.Contains(probe.Classes, class) {
				counts.odd = append(counts.odd, err)
			}
			counts.failed[class]++
		}
		counts.mu.Unlock()
		sleepCtx(ctx, pause)
	}
}

// BenchmarkWaitPortOpensAfter2s runs the reach binary's `wait` inside the
// client namespace against a port that starts listening 2s later, and
// reports how long after the port opened wait returned.
func BenchmarkWaitPortOpensAfter2s(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "reach")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/reach").CombinedOutput(); err != nil {
		b.Fatalf("build reach: %v\n%s", err, out)
	}
	p := netlab.New(b).Pair()
	addr := refusing(b, p.Server, netip.AddrPortFrom(p.ServerAddr, 0).String())
	var after []time.Duration
	for b.Loop() {
		cmd := exec.Command("ip", "netns", "exec", p.Client.Name(), bin, "wait", addr.String(), "--timeout", "10s", "-q")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the scenario: the server comes up 2s later
		var ln net.Listener
		if err := p.Server.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			b.Fatal(err)
		}
		opened := time.Now()
		testnet.ServeOn(b, ln, testnet.Drain)
		err := cmd.Wait()
		after = append(after, time.Since(opened))
		ln.Close()
		if err != nil {
			b.Fatalf("reach wait: %v", err)
		}
	}
	var total time.Duration
	for _, d := range after {
		total += d
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(len(after)), "ms-after-open")
	b.ReportMetric(float64(slices.Max(after).Microseconds())/1000, "max-ms-after-open")
	b.ReportMetric(0, "ns/op")
}
