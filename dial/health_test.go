package dial

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

func TestEjectionPeriodGrows(t *testing.T) {
	tests := []struct {
		e    Ejection
		n    int
		want time.Duration
	}{
		{Ejection{}, 1, 30 * time.Second},
		{Ejection{}, 2, 60 * time.Second},
		{Ejection{}, 10, 300 * time.Second},
		{Ejection{}, 1 << 40, 300 * time.Second},
		{Ejection{BaseTime: time.Second, MaxTime: 3 * time.Second}, 3, 3 * time.Second},
		{Ejection{BaseTime: 5 * time.Second, MaxTime: time.Second}, 2, 5 * time.Second},
	}
	for _, tt := range tests {
		if got := tt.e.period(tt.n); got != tt.want {
			t.Errorf("%+v.period(%d) = %v, want %v", tt.e, tt.n, got, tt.want)
		}
	}
}

// dialedFirst dials once and returns the addresses attempted, in order.
func dialedFirst(t *testing.T, d *Dialer, fn *fakeNet) []string {
	t.Helper()
	before := len(fn.log())
	conn, err := d.DialContext(t.Context())
	if err == nil {
		conn.Close()
	}
	var out []string
	for _, c := range fn.log()[before:] {
		out = append(out, c.addr)
	}
	return out
}

func TestPassiveEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		a, b := "198.18.0.1:80", "198.18.0.2:80"
		fn.set(b, accept(0))
		var log attemptLog
		d := New(eps(t, a, b), Options{Dial: fn.dial, OnAttempt: log.add,
			Eject: Ejection{Consecutive: 2, BaseTime: 10 * time.Second, MaxTime: 25 * time.Second}})
		step := func(want ...string) {
			t.Helper()
			if got := dialedFirst(t, d, fn); !slices.Equal(got, want) {
				t.Errorf("at %v: dialled %v, want %v", time.Since(fn.start), got, want)
			}
		}
		step(a, b)
		step(a, b) // second failure in a row: a is ejected for 10s
		step(b)
		time.Sleep(10*time.Second - time.Nanosecond)
		step(b)
		time.Sleep(time.Nanosecond)
		step(a, b)
		step(a, b) // ejected again, now for 20s
		time.Sleep(20*time.Second - time.Nanosecond)
		step(b)
		time.Sleep(time.Nanosecond)
		step(a, b)
		step(a, b) // third ejection: 30s capped at 25s
		time.Sleep(25 * time.Second)
		step(a, b)
		var ejections int
		for _, at := range log.get() {
			if at.Ejected {
				ejections++
				if at.Addr.String() != a {
					t.Errorf("ejected %s, want only %s", at.Addr, a)
				}
			}
		}
		if ejections != 3 {
			t.Errorf("%d ejections reported, want 3", ejections)
		}
	})
}

func TestSuccessForgivesEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		a := "198.18.0.1:80"
		var up atomic.Bool
		fn.set(a, func(ctx context.Context) (net.Conn, error) {
			if up.Load() {
				return accept(0)(ctx)
			}
			return refuse(ctx)
		})
		fn.set("198.18.0.2:80", accept(0))
		d := New(eps(t, a, "198.18.0.2:80"), Options{Dial: fn.dial, Eject: Ejection{Consecutive: 1, BaseTime: 10 * time.Second}})
		dialedFirst(t, d, fn) // ejected for 10s
		time.Sleep(10 * time.Second)
		dialedFirst(t, d, fn) // ejected for 20s
		time.Sleep(20 * time.Second)
		up.Store(true)
		dialedFirst(t, d, fn) // success: one ejection forgiven
		up.Store(false)
		dialedFirst(t, d, fn) // ejected for 20s again (not 30s)
		time.Sleep(20 * time.Second)
		if got := dialedFirst(t, d, fn); got[0] != a {
			t.Errorf("after 20s dialled %v first, want %s back", got, a)
		}
	})
}

func TestAllEjectedTriesLeastRecentlyFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		a, b := "198.18.0.1:80", "198.18.0.2:80"
		d := New(eps(t, a, b), Options{Dial: fn.dial, Eject: Ejection{Consecutive: 1}})
		if got := dialedFirst(t, d, fn); !slices.Equal(got, []string{a, b}) {
			t.Fatalf("dialled %v", got)
		}
		time.Sleep(time.Second)
		if got := dialedFirst(t, d, fn); !slices.Equal(got, []string{a}) {
			t.Errorf("all ejected: dialled %v, want [%s] (failed longest ago)", got, a)
		}
		time.Sleep(time.Second)
		if got := dialedFirst(t, d, fn); !slices.Equal(got, []string{b}) {
			t.Errorf("all ejected: dialled %v, want [%s] (now failed longest ago)", got, b)
		}
		_, err := d.DialContext(t.Context())
		var de *Error
		if !errors.As(err, &de) || len(de.Last) != 2 {
			t.Fatalf("err = %v, want both endpoints listed", err)
		}
		for _, l := range de.Last {
			if l.Class != probe.Refused || !l.Ejected {
				t.Errorf("%s: class %s ejected %v; want refused, ejected", l.Label(), l.Class, l.Ejected)
			}
		}
		if msg := err.Error(); !strings.Contains(msg, a+" refused (ejected)") || !strings.Contains(msg, b+" refused (ejected)") {
			t.Errorf("message %q does not list both endpoints' classes", msg)
		}
	})
}

func TestActiveHealthCheckReturnsEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		a, b := "198.18.0.1:80", "198.18.0.2:80"
		var up atomic.Bool
		fn.set(a, func(ctx context.Context) (net.Conn, error) {
			if up.Load() {
				return accept(0)(ctx)
			}
			return refuse(ctx)
		})
		fn.set(b, accept(0))
		var log attemptLog
		d := New(eps(t, a, b), Options{Dial: fn.dial, OnAttempt: log.add, HealthInterval: time.Second,
			Eject: Ejection{Consecutive: 1, BaseTime: time.Hour}})
		defer d.Close()
		dialedFirst(t, d, fn) // a ejected for an hour
		time.Sleep(1500 * time.Millisecond)
		if got := dialedFirst(t, d, fn); !slices.Equal(got, []string{b}) {
			t.Errorf("dialled %v, want only %s while %s is down", got, b, a)
		}
		up.Store(true)
		time.Sleep(time.Second) // the next check finds a up
		synctest.Wait()
		if got := dialedFirst(t, d, fn); !slices.Equal(got, []string{a}) {
			t.Errorf("dialled %v, want %s back after its health check", got, a)
		}
		var checks []probe.Class
		for _, at := range log.get() {
			if at.Health {
				checks = append(checks, at.Class)
			}
		}
		if !slices.Equal(checks, []probe.Class{probe.Refused, probe.Open}) {
			t.Errorf("health checks %v, want [refused open]", checks)
		}
	})
}

func TestRoundRobinAndRandom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		addrs := []string{"198.18.0.1:80", "198.18.0.2:80", "198.18.0.3:80"}
		for _, a := range addrs {
			fn.set(a, accept(0))
		}
		rr := New(eps(t, addrs...), Options{Dial: fn.dial, Policy: RoundRobin})
		var firsts []string
		for range 6 {
			firsts = append(firsts, dialedFirst(t, rr, fn)[0])
		}
		if want := append(append([]string(nil), addrs...), addrs...); !slices.Equal(firsts, want) {
			t.Errorf("round-robin started at %v, want %v", firsts, want)
		}
		rnd := New(eps(t, addrs...), Options{Dial: fn.dial, Policy: Random})
		seen := map[string]int{}
		for range 200 {
			seen[dialedFirst(t, rnd, fn)[0]]++
		}
		for _, a := range addrs {
			if seen[a] < 20 {
				t.Errorf("random started at %s %d times in 200 dials: %v", a, seen[a], seen)
			}
		}
	})
}

func TestErrorListsEachEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		fn.set("198.18.0.2:80", drop)
		fn.set("198.18.0.3:80", fail(syscall.EHOSTUNREACH))
		d := New(eps(t, "198.18.0.1:80", "198.18.0.2:80", "198.18.0.3:80"), Options{Dial: fn.dial, Timeout: time.Second})
		_, err := d.DialContext(t.Context())
		for _, c := range []probe.Class{probe.Refused, probe.Timeout, probe.HostUnreachable} {
			if !errors.Is(err, c) {
				t.Errorf("errors.Is(err, %s) = false; err = %v", c, err)
			}
		}
		if errors.Is(err, probe.DNS) {
			t.Errorf("errors.Is(err, dns) = true; err = %v", err)
		}
		want := "dial: no endpoint accepted a connection (3 attempts): 198.18.0.1:80 refused; 198.18.0.2:80 timeout; 198.18.0.3:80 host-unreachable"
		if err.Error() != want {
			t.Errorf("message\n%s\nwant\n%s", err, want)
		}
		var pe *probe.Error
		if !errors.As(err, &pe) || pe.Op != "dial" {
			t.Errorf("errors.As(*probe.Error) = %v", pe)
		}
	})
}

func TestDialNetworkRejectsOtherNetworks(t *testing.T) {
	d := New(eps(t, "127.0.0.1:1"), Options{})
	for _, n := range []string{"udp", "unix", ""} {
		if _, err := d.DialNetwork(t.Context(), n, "x:1"); err == nil {
			t.Errorf("DialNetwork(%q) succeeded", n)
		}
	}
	if _, err := New(nil, Options{}).DialContext(t.Context()); !errors.Is(err, ErrNoEndpoints) {
		t.Errorf("no endpoints: err = %v", err)
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"ordered": Ordered, "RACE": Race, " round-robin ": RoundRobin, "rr": RoundRobin, "random": Random} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fastest", "order"} {
		if _, err := ParsePolicy(in); err == nil || !strings.Contains(err.Error(), "ordered, round-robin, random, race") {
			t.Errorf("ParsePolicy(%q) err = %v, want the list of policies", in, err)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"ordered", "race", "rr", "Random", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		if !slices.Contains(Policies, p) {
			t.Fatalf("ParsePolicy(%q) = %q, not a policy", s, p)
		}
		if again, err := ParsePolicy(p.String()); err != nil || again != p {
			t.Fatalf("round trip of %q: %q, %v", p, again, err)
		}
	})
}

func TestInterleaveFamilies(t *testing.T) {
	p := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	tests := []struct{ in, want []netip.Addr }{
		{p("fd00::1", "fd00::2", "fd00::3", "198.18.0.1", "198.18.0.2"), p("fd00::1", "198.18.0.1", "fd00::2", "198.18.0.2", "fd00::3")},
		{p("198.18.0.1", "fd00::1"), p("198.18.0.1", "fd00::1")},
		{p("198.18.0.1", "198.18.0.2"), p("198.18.0.1", "198.18.0.2")},
		{p("fd00::1"), p("fd00::1")},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := interleave(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("interleave(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// Healthy addresses leave no state behind, however many a dialer sees.
func TestHealthForgetsHealthyAddresses(t *testing.T) {
	d := New(nil, Options{})
	defer d.Close()
	for i := range 1000 {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 5432)
		d.observe(Attempt{Addr: ap, Class: probe.Refused})
		d.observe(Attempt{Addr: ap, Class: probe.Open})
	}
	if n := len(d.health); n != 0 {
		t.Errorf("%d addresses remembered after they all recovered, want 0", n)
	}
}

// An address that failed and then vanished from the name's answers is
// forgotten once no dial has had it for forgetAfter; one still in the
// answers keeps its ejection however long the dialer sits idle.
func TestHealthForgetsVanishedAddresses(t *testing.T) {
	up := testnet.ServeOn(t, testnet.ListenOn(t, "tcp", "127.0.0.3:0"), testnet.Echo)
	gone := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), up.Port())
	stays := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.4"), up.Port())
	for _, ap := range []netip.AddrPort{gone, stays} {
		ln, err := net.Listen("tcp", ap.String())
		if err != nil {
			t.Skipf("cannot hold %v to make it refuse: %v", ap, err)
		}
		ln.Close()
	}
	res, switchZone := switchingResolver(t,
		map[string][]netip.Addr{"svc.reach.test": {gone.Addr()}, "db.reach.test": {stays.Addr()}},
		map[string][]netip.Addr{"svc.reach.test": {up.Addr()}, "db.reach.test": {stays.Addr()}})
	eject := Ejection{Consecutive: 1, BaseTime: 10 * time.Millisecond, MaxTime: 20 * time.Millisecond}
	svc := New([]endpoint.Endpoint{{Host: "svc.reach.test", Port: up.Port()}}, Options{Resolver: res, Eject: eject})
	db := New([]endpoint.Endpoint{{Host: "db.reach.test", Port: up.Port()}}, Options{Resolver: res, Eject: eject})
	if _, err := svc.DialContext(t.Context()); !errors.Is(err, probe.Refused) {
		t.Fatalf("first dial: %v, want refused by %v", err, gone)
	}
	if _, err := db.DialContext(t.Context()); !errors.Is(err, probe.Refused) {
		t.Fatalf("db dial: %v, want refused by %v", err, stays)
	}
	switchZone()
	time.Sleep(svc.forgetAfter() + 20*time.Millisecond)
	conn, err := svc.DialContext(t.Context())
	if err != nil {
		t.Fatalf("dial after the name moved: %v", err)
	}
	conn.Close()
	svc.mu.Lock()
	_, remembered := svc.health[gone]
	svc.mu.Unlock()
	if remembered {
		t.Errorf("%v vanished from the answers %v ago and is still remembered", gone, svc.forgetAfter())
	}
	db.DialContext(t.Context()) // refused again: its second ejection, if the first is remembered
	db.mu.Lock()
	h := db.health[stays]
	db.mu.Unlock()
	if h == nil || h.ejections != 2 {
		t.Errorf("%v is still in the answers but its ejection history was forgotten: %+v", stays, h)
	}
}

// TestHealthLayersKeepNotReadyOut: with HealthLayers asking Redis, an
// ejected endpoint that accepts TCP but answers -LOADING stays out, and
// returns once it answers PONG.
func TestHealthLayersKeepNotReadyOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fn := newFakeNet()
		a, b := "198.18.0.1:6379", "198.18.0.2:6379"
		var state atomic.Int32 // 0 refuses, 1 loading, 2 ready
		fn.set(a, func(ctx context.Context) (net.Conn, error) {
			reply := map[int32]string{1: "-LOADING Redis is loading the dataset in memory\r\n", 2: "+PONG\r\n"}[state.Load()]
			if reply == "" {
				return refuse(ctx)
			}
			c1, c2 := net.Pipe()
			go func() {
				defer c2.Close()
				buf := make([]byte, 64)
				if _, err := c2.Read(buf); err == nil {
					c2.Write([]byte(reply))
				}
			}()
			return c1, nil
		})
		fn.set(b, accept(0))
		var log attemptLog
		d := New(eps(t, a, b), Options{Dial: fn.dial, OnAttempt: log.add, HealthInterval: time.Second,
			Eject: Ejection{Consecutive: 1, BaseTime: time.Hour}, HealthLayers: Layers{App: &app.Request{Protocol: "redis"}}})
		defer d.Close()
		dialedFirst(t, d, fn) // a refused: ejected for an hour
		state.Store(1)
		time.Sleep(1500 * time.Millisecond) // a check: loading
		if got := dialedFirst(t, d, fn); !slices.Equal(got, []string{b}) {
			t.Errorf("dialled %v, want only %s while %s loads", got, b, a)
		}
		state.Store(2)
		time.Sleep(time.Second) // the next check: PONG
		synctest.Wait()
		if got := dialedFirst(t, d, fn); !slices.Equal(got, []string{a}) {
			t.Errorf("dialled %v, want %s back once it answers PONG", got, a)
		}
		var checks []string
		for _, at := range log.get() {
			if at.Health {
				checks = append(checks, string(at.Class)+" "+at.NotReady)
			}
		}
		if len(checks) != 2 || !strings.HasPrefix(checks[0], "open redis not-ready: ") || checks[1] != "open " {
			t.Errorf("health checks %q, want one open but not ready (redis not-ready), then one open and ready", checks)
		}
	})
}
