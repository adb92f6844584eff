package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/netwatch"
	"github.com/reach-tools/reach/probe"
)

// changeLab is reach watch on a client host of a routed lab, probing a
// server behind the router ("far") and the client's own loopback ("near"),
// both every minute, so only a network change can make them be probed
// again within the test.
type changeLab struct {
	r      *netlab.Routed
	w      *hub.Watch
	probes map[string]*atomic.Int32
	alerts chan monitor.Alert
}

func newChangeLab(t *testing.T) *changeLab {
	netlab.Require(t)
	lab := netlab.New(t)
	r := lab.Routed()
	// The client's IPv6 link-local addresses come a moment after its links
	// are up, when duplicate address detection ends: wait them out, so a
	// test's own change is not one burst with them.
	if !testnet.Poll(10*time.Second, func() bool {
		return strings.TrimSpace(r.Client.Run(t, "ip", "-6", "addr", "show", "tentative")) == ""
	}) {
		t.Fatal("the client's IPv6 addresses are still tentative after 10 s")
	}
	far := r.Server.Listen(t, "tcp", netip.AddrPortFrom(r.ServerAddr, 0).String())
	near := r.Client.Listen(t, "tcp", "127.0.0.1:0")
	alerts := make(chan monitor.Alert, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var a monitor.Alert
		if json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&a) == nil {
			alerts <- a
		}
	}))
	t.Cleanup(hook.Close)
	yaml := fmt.Sprintf(`alerts:
  webhook: %s
  rise: 1
  fall: 3
endpoints:
  - name: far
    target: %s
    interval: 60s
    timeout: 1s
  - name: near
    target: %s
    interval: 60s
    timeout: 1s
`, hook.URL, far.Addr(), near.Addr())
	cfg, err := monitor.ParseConfig("changes.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cl := &changeLab{r: r, alerts: alerts,
		probes: map[string]*atomic.Int32{"far": new(atomic.Int32), "near": new(atomic.Int32)}}
	names := map[string]string{far.Addr().String(): "far", near.Addr().String(): "near"}
	count := func(ctx context.Context, ep endpoint.Endpoint, o probe.Options) probe.Result {
		if c := cl.probes[names[ep.String()]]; c != nil {
			c.Add(1)
		}
		return probe.Run(ctx, ep, o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cl.w, err = hub.NewWatch(ctx, cfg, hub.WatchOptions{NoDoctor: true,
		Monitor:  monitor.Options{Dial: r.Client.DialContext, Probe: count},
		NetWatch: netwatch.Options{RunIn: r.Client.Do}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	done := make(chan error, 1)
	go func() { done <- cl.w.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Until the first change is seen, nothing is probed (a minute's
	// random phase): an address on lo is a change that affects everything.
	for i := range 50 {
		r.Client.Run(t, "ip", "addr", "add", fmt.Sprintf("198.19.250.%d/32", i+1), "dev", "lo")
		if cl.state("far") == monitor.StateUp && cl.state("near") == monitor.StateUp {
			return cl
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("endpoints not up 5 s after network changes: far %s, near %s", cl.state("far"), cl.state("near"))
	return nil
}

func (cl *changeLab) state(name string) monitor.State {
	st, err := cl.w.Monitor.Status(monitor.LocalSource, name)
	if err != nil {
		return ""
	}
	return st.State
}

// settle waits until no probe ran for a while, so counts can be compared.
func (cl *changeLab) settle(t *testing.T) {
	t.Helper()
	last := int32(-1)
	for range 60 {
		n := cl.probes["far"].Load() + cl.probes["near"].Load()
		if n == last {
			return
		}
		last = n
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("probes did not stop 30 s after the last change")
}

func TestRouteRemovedDownWithinASecond(t *testing.T) {
	cl := newChangeLab(t)
	cl.settle(t)
	near := cl.probes["near"].Load()
	prefix := netip.PrefixFrom(cl.r.ServerAddr, 24).Masked()
	changed := time.Now()
	cl.r.Client.Run(t, "ip", "route", "del", prefix.String())
	var down time.Duration
	for down = 0; down < 3*time.Second && cl.state("far") != monitor.StateDown; down = time.Since(changed) {
		time.Sleep(10 * time.Millisecond)
	}
	if cl.state("far") != monitor.StateDown {
		t.Fatalf("far is %s 3 s after its route was removed (interval 60 s)", cl.state("far"))
	}
	t.Logf("far went down %v after its route was removed", down.Round(time.Millisecond))
	if down > time.Second {
		t.Errorf("far went down %v after the change; want within 1 s", down)
	}
	cl.settle(t)
	if n := cl.probes["near"].Load(); n != near {
		t.Errorf("near was probed %d times after a change of a route it does not use", n-near)
	}
	// Other changes come and go (IPv6 link-local addresses appear a moment
	// after a link is up; they affect no IPv4 endpoint): find ours.
	wantSummary := "route " + prefix.String() + " via " + cl.r.RouterClientSide.String()
	var c monitor.NetChange
	for _, nc := range cl.w.Monitor.NetChanges() {
		if strings.HasPrefix(nc.Summary, wantSummary) {
			c = nc
			break
		}
	}
	if !strings.Contains(c.Summary, "removed") {
		t.Fatalf("no change %q...removed in %+v", wantSummary, cl.w.Monitor.NetChanges())
	}
	if strings.Join(c.Down, ",") != "far" || strings.Join(c.Rechecked, ",") != "far" {
		t.Errorf("change: rechecked %v, down %v; want far for both", c.Rechecked, c.Down)
	}
	if !strings.Contains(c.String(), "1 endpoint went down within") {
		t.Errorf("change in one line: %q", c.String())
	}
	// The alert says which change it followed.
	select {
	case a := <-cl.alerts:
		if a.Endpoint != "far" || a.State != monitor.StateDown || a.Change != c.Summary {
			t.Errorf("alert %+v; want far down after %q", a, c.Summary)
		}
	case <-time.After(10 * time.Second):
		t.Error("no alert 10 s after far went down")
	}
	// And the API lists it.
	rec := httptest.NewRecorder()
	cl.w.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/changes", nil))
	var listed []monitor.NetChange
	if err := json.Unmarshal(rec.Body.Bytes(), &listed); err != nil ||
		!slices.ContainsFunc(listed, func(l monitor.NetChange) bool { return l.ID == c.ID && l.Down[0] == "far" }) {
		t.Errorf("/api/changes does not list change %d with far down: %v %s", c.ID, err, rec.Body.String())
	}
}

func TestBurstOfChangesOneRecheckRound(t *testing.T) {
	cl := newChangeLab(t)
	cl.settle(t)
	before := len(cl.w.Monitor.NetChanges())
	far := cl.probes["far"].Load()
	var batch strings.Builder
	for i := range 10 {
		fmt.Fprintf(&batch, "address add 198.19.251.%d/32 dev lo\n", i+1)
	}
	cl.r.Client.Run(t, "sh", "-c", "printf '"+batch.String()+"' | ip -batch -")
	cl.settle(t)
	// IPv6 link-local addresses may join the burst, or come on their own.
	var bursts, ours int
	for _, c := range cl.w.Monitor.NetChanges()[:len(cl.w.Monitor.NetChanges())-before] {
		n := 0
		for _, ch := range c.Changes {
			if strings.Contains(ch.Detail, "198.19.251.") {
				n++
			}
		}
		if n > 0 {
			bursts, ours = bursts+1, ours+n
		}
	}
	if bursts != 1 || ours != 10 {
		t.Fatalf("10 changes in one batch were recorded in %d bursts holding %d of them; want 1 of 10",
			bursts, ours)
	}
	// One round: as many probes as it takes to move a state (fall: 3).
	if n := cl.probes["far"].Load() - far; n != 3 {
		t.Errorf("far was probed %d times after one burst; want one round of 3", n)
	}
}

// TestAgentRechecksOnNetworkChange: an agent re-probes at once what a
// change of its own network may affect, and the hub records the change
// with the pair it sent down. The interval is a minute: only the change
// can explain a state change within seconds.
func TestAgentRechecksOnNetworkChange(t *testing.T) {
	netlab.Require(t)
	f := newFleetWith(t, fleetOptions{interval: time.Minute})
	web, db := f.hosts[1], f.addrs[2]
	// The first probes come from a change too (the schedule's phase could
	// be a minute): an address on each agent's lo affects every target.
	// Repeated: an agent that has no list yet, or no watch, misses one.
	full := func() bool { bad, filled := failing(f.matrix(t)); return filled == 12 && len(bad) == 0 }
	for i := 0; !full(); i++ {
		if i == 30 {
			bad, filled := failing(f.matrix(t))
			t.Fatalf("30 rounds of changes did not fill the matrix: %d cells, failing %v", filled, bad)
		}
		for j, h := range f.hosts {
			h.Run(t, "ip", "addr", "add", fmt.Sprintf("198.19.%d.%d/32", 200+i, j+1), "dev", "lo")
		}
		testnet.Poll(time.Second, full)
	}
	changed := time.Now()
	web.Run(t, "ip", "route", "add", "unreachable", db.String()+"/32")
	took := waitMatrix(t, f, 10*time.Second, "web->db down", func(bad []string, _ int) bool {
		return slices.Equal(bad, []string{fmt.Sprintf("web->db:%d=host-unreachable", labPort)})
	})
	t.Logf("web->db went down %v after its route changed (interval 1 min)", time.Since(changed).Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("web->db took %v to go down after the change; the interval is a minute, want seconds", took)
	}
	var changes []monitor.NetChange
	testnet.Eventually(t, 10*time.Second, "the hub records web's change", func() bool {
		if err := json.Unmarshal([]byte(f.get(t, "/api/changes")), &changes); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(changes, func(c monitor.NetChange) bool {
			return c.Source == "web" && len(c.Down) == 1
		})
	})
	for _, c := range changes {
		if c.Source != "web" || len(c.Down) != 1 {
			continue
		}
		want := fmt.Sprintf("db:%d", labPort)
		if c.Down[0] != want || !slices.Equal(c.Rechecked, []string{want}) ||
			!strings.HasPrefix(c.Summary, "route unreachable "+db.String()+"/32") {
			t.Errorf("web's change: %+v; want route unreachable %s/32, %s re-probed and down", c, db, want)
		}
	}
}

// BenchmarkChangeToReprobe times a route change that affects an endpoint
// to the first probe it causes (the interval is an hour): p50-ms and
// p99-ms from the kernel's notice reaching reach (the change's Time) to
// the probe, netwatch's quiet window included; wall-p99-ms from before
// the ip command that makes the change. At most 200 changes, whatever b.N.
func BenchmarkChangeToReprobe(b *testing.B) {
	netlab.Require(b)
	lab := netlab.New(b)
	p := lab.Pair()
	ln := p.Server.Listen(b, "tcp", netip.AddrPortFrom(p.ServerAddr, 0).String())
	cfg, err := monitor.ParseConfig("bench.yaml", []byte(fmt.Sprintf(
		"alerts: {rise: 1, fall: 1}\nendpoints:\n  - {name: db, target: %s, interval: 1h, timeout: 1s}\n",
		ln.Addr())))
	if err != nil {
		b.Fatal(err)
	}
	probed := make(chan time.Time, 16)
	probe1 := func(ctx context.Context, ep endpoint.Endpoint, o probe.Options) probe.Result {
		select {
		case probed <- time.Now():
		default:
		}
		return probe.Run(ctx, ep, o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := hub.NewWatch(ctx, cfg, hub.WatchOptions{NoDoctor: true,
		Monitor:  monitor.Options{Dial: p.Client.DialContext, Probe: probe1},
		NetWatch: netwatch.Options{RunIn: p.Client.Do}})
	if err != nil {
		b.Fatal(err)
	}
	go w.Run(ctx, testnet.Listen(b))
	dev := p.Client.InterfaceOf(b, p.ClientAddr)
	route := func(op string) { p.Client.Run(b, "ip", "route", op, p.ServerAddr.String()+"/32", "dev", dev) }
	wait := func() (time.Time, bool) {
		select {
		case at := <-probed:
			return at, true
		case <-time.After(2 * time.Second):
			return time.Time{}, false
		}
	}
	route("add") // the watch is up once this change is probed
	for range 50 {
		if _, ok := wait(); ok {
			break
		}
		route("del")
		route("add")
	}
	time.Sleep(300 * time.Millisecond)
	for len(probed) > 0 {
		<-probed
	}
	n := min(b.N, 200)
	lat := make([]time.Duration, 0, n)
	wall := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := range n {
		start := time.Now()
		route(map[bool]string{true: "del", false: "add"}[i%2 == 0])
		at, ok := wait()
		if !ok {
			b.Fatalf("change %d: no re-probe within 2 s", i)
		}
		noticed := w.Monitor.NetChanges()[0].Time
		lat = append(lat, at.Sub(noticed))
		wall = append(wall, at.Sub(start))
		time.Sleep(150 * time.Millisecond) // the next change is its own burst
		for len(probed) > 0 {
			<-probed
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(wall)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(wall[len(wall)*99/100]), "wall-p99-ms")
}
