package discover

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// fake is a transport whose hosts answer after a set delay (from their
// first request), or never.
type fake struct {
	routes  map[netip.Addr]route
	answer  map[netip.Addr]time.Duration // delay of the answer; absent: silent
	entries map[netip.Addr]neighEntry
	sent    map[netip.Addr][]time.Duration // when each request went, since start
	first   map[netip.Addr]time.Time
	start   time.Time
	given   map[netip.Addr]bool
}

func (f *fake) route(a netip.Addr) route { return f.routes[a] }
func (f *fake) send(h *host) {
	if f.first[h.addr].IsZero() {
		f.first[h.addr] = time.Now()
	}
	f.sent[h.addr] = append(f.sent[h.addr], time.Since(f.start))
}
func (f *fake) poll(wait time.Duration, fn func(answer)) {
	time.Sleep(max(wait, time.Microsecond))
	for a, d := range f.answer {
		if t := f.first[a]; !t.IsZero() && !f.given[a] && time.Since(t) >= d {
			f.given[a] = true
			fn(answer{addr: a, by: ARP, reason: ReasonARPResponse, at: time.Now()})
		}
	}
}
func (f *fake) neigh(a netip.Addr) neighEntry { return f.entries[a] }
func (f *fake) forget(*host)                  {}
func (f *fake) close()                        {}

// The rule, in virtual time: on a segment where a host answered, a silent
// one is down after three requests at 0, 60 and 180 ms (420 ms in all); one
// answering 300 ms late is up; through a router silence is unknown (probed);
// on a segment where nothing answered, unknown after one wait; with the
// kernel asking, its neighbour entry decides.
func TestScheduleRule(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	synctest.Test(t, func(t *testing.T) {
		lan, quiet, wan, klan := &group{name: "lan0", onLink: true}, &group{name: "lan1", onLink: true},
			&group{name: "router 198.18.9.1"}, &group{name: "lan2", onLink: true}
		f := &fake{
			routes: map[netip.Addr]route{
				a("198.18.0.2"): {g: lan, by: ARP}, a("198.18.0.3"): {g: lan, by: ARP}, a("198.18.0.4"): {g: lan, by: ARP},
				a("198.18.1.2"): {g: quiet, by: ARP},
				a("198.18.2.2"): {g: wan, by: Echo}, a("198.18.2.3"): {g: wan, by: Echo},
				a("198.18.3.2"): {g: klan, by: TCP, kernel: true}, a("198.18.3.3"): {g: klan, by: TCP, kernel: true},
				a("198.18.3.4"): {g: klan, by: TCP, kernel: true}, a("198.18.3.5"): {g: klan, by: TCP, kernel: true},
				a("198.18.0.1"): {final: &Result{State: Up, By: Local, Reason: ReasonLocalhost}},
			},
			answer: map[netip.Addr]time.Duration{a("198.18.0.2"): time.Millisecond, a("198.18.0.4"): 300 * time.Millisecond,
				a("198.18.2.2"): 2 * time.Millisecond, a("198.18.3.2"): time.Millisecond},
			entries: map[netip.Addr]neighEntry{a("198.18.3.3"): unresolvedEntry, a("198.18.3.4"): noEntry, a("198.18.3.5"): resolvedEntry},
			sent:    map[netip.Addr][]time.Duration{}, first: map[netip.Addr]time.Time{}, given: map[netip.Addr]bool{},
			start: time.Now(),
		}
		addrs := []netip.Addr{a("198.18.0.1"), a("198.18.0.2"), a("198.18.0.3"), a("198.18.0.4"), a("198.18.0.3"),
			a("198.18.1.2"), a("198.18.2.2"), a("198.18.2.3"), a("198.18.3.2"), a("198.18.3.3"), a("198.18.3.4"), a("198.18.3.5")}
		res, err := schedule(context.Background(), addrs, Options{}.withDefaults(), f)
		if err != nil {
			t.Fatal(err)
		}
		got := map[netip.Addr]string{}
		for _, r := range res {
			s := r.State.String() + " " + string(r.By) + " " + r.Reason
			if r.Probed {
				s += " probed"
			}
			got[r.Addr] = s
		}
		want := map[netip.Addr]string{
			a("198.18.0.1"): "up local localhost-response",
			a("198.18.0.2"): "up arp arp-response",
			a("198.18.0.3"): "down arp no-response",
			a("198.18.0.4"): "up arp arp-response", // 300 ms late, inside the 420 ms window
			a("198.18.1.2"): "unknown arp ",        // nobody on lan1 answered
			a("198.18.2.2"): "up arp arp-response",
			a("198.18.2.3"): "unknown echo  probed", // a router's silence
			a("198.18.3.2"): "up arp arp-response",
			a("198.18.3.3"): "down arp no-response", // the kernel's entry: INCOMPLETE
			a("198.18.3.4"): "unknown arp ",         // no entry: neither way
			a("198.18.3.5"): "up arp arp-response",  // the kernel's entry: confirmed
		}
		if len(res) != len(want) {
			t.Errorf("%d results, want %d (one per distinct address)", len(res), len(want))
		}
		for addr, w := range want {
			if got[addr] != w {
				t.Errorf("%v: %q, want %q", addr, got[addr], w)
			}
		}
		ms := time.Millisecond
		if s := f.sent[a("198.18.0.3")]; len(s) != 3 || s[0] != 0 || s[1] < 60*ms || s[1] > 61*ms || s[2] < 180*ms || s[2] > 181*ms {
			t.Errorf("requests to the silent neighbour at %v, want 0, 60ms, 180ms", s)
		}
		if s := f.sent[a("198.18.1.2")]; len(s) != 1 {
			t.Errorf("requests on a segment where nothing answered: %v, want one", s)
		}
		if d := time.Since(f.start); d < 420*ms || d > 425*ms {
			t.Errorf("took %v, want 420ms", d)
		}
	})
}

// A canceled run returns what it has and ctx's error.
func TestScheduleCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &group{name: "lan0", onLink: true}
		x := netip.MustParseAddr("198.18.0.9")
		f := &fake{routes: map[netip.Addr]route{x: {g: g, by: ARP}}, sent: map[netip.Addr][]time.Duration{},
			first: map[netip.Addr]time.Time{}, given: map[netip.Addr]bool{}, start: time.Now()}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		res, err := schedule(ctx, []netip.Addr{x}, Options{Ceiling: time.Second}.withDefaults(), f)
		if err != context.DeadlineExceeded || len(res) != 1 || res[0].State != Unknown {
			t.Fatalf("%+v, %v", res, err)
		}
	})
}
