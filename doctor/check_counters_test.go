package doctor

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/kstat"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// fakeCounters returns its snapshots in turn: before, then after.
type fakeCounters struct {
	mu    sync.Mutex
	snaps []kstat.Snapshot
	err   error
}

func (f *fakeCounters) Read(context.Context) (kstat.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || len(f.snaps) == 0 {
		return kstat.Snapshot{}, cmpOr(f.err, errors.New("no more snapshots"))
	}
	s := f.snaps[0]
	f.snaps = f.snaps[1:]
	return s, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func snap(counters map[string]int64, ct *kstat.Conntrack) kstat.Snapshot {
	return kstat.Snapshot{Time: time.Unix(0, 0), Netns: 4026531840, Counters: counters, Conntrack: ct,
		PortRange: kstat.PortRange{Low: 32768, High: 60999}}
}

// TestKernelFindings turns counter deltas into findings, from fixtures: what
// the lab cannot easily produce (a conntrack table full without drops, a
// queue that overflowed in a burst) and what must stay quiet.
func TestKernelFindings(t *testing.T) {
	self := fakeHost{addrs: selfAddrs(), socks: []sockets.Socket{listener("0.0.0.0:5432", "sleeping", 0, 128)}}
	full := fakeHost{addrs: selfAddrs(), socks: []sockets.Socket{listener("0.0.0.0:5432", "sleeping", 129, 128)}}
	ct := func(count, drop, early int64) *kstat.Conntrack {
		return &kstat.Conntrack{Count: count, Max: 1000, Stats: map[string]int64{"drop": drop, "early_drop": early}}
	}
	tests := []struct {
		name          string
		class         probe.Class
		host          fakeHost
		before, after kstat.Snapshot
		cause         Cause
		conf          Confidence
		evidence      string
	}{
		{"conntrack full, packets dropped", probe.Timeout, self,
			snap(nil, ct(1000, 5, 0)), snap(nil, ct(1000, 8, 0)), ConntrackFull, Confirmed,
			"conntrack holds 1000 of 1000 entries in network namespace net:[4026531840] (net.netfilter.nf_conntrack_count of nf_conntrack_max), and the kernel dropped 3 packets"},
		{"conntrack full, nothing dropped", probe.Timeout, self,
			snap(nil, ct(1000, 0, 0)), snap(nil, ct(1000, 0, 7)), ConntrackFull, Likely,
			"new connections are dropped unless an unreplied entry can be evicted (early_drop +7 during the probes)"},
		{"conntrack full, but the probe connected", probe.Open, self,
			snap(nil, ct(1000, 0, 0)), snap(nil, ct(1000, 2, 0)), Reachable, Confirmed, ""},
		{"conntrack with room", probe.Timeout, self,
			snap(nil, ct(10, 0, 0)), snap(nil, ct(11, 0, 0)), FirewallDrop, Likely, ""},
		{"queue full, SYNs dropped", probe.Timeout, full,
			snap(map[string]int64{kstat.ListenOverflows: 10, kstat.ListenDrops: 10}, nil),
			snap(map[string]int64{kstat.ListenOverflows: 13, kstat.ListenDrops: 14}, nil), Overloaded, Confirmed,
			"the kernel dropped 3 SYNs to a full accept queue of postgres (pid 812) on 0.0.0.0:5432 during the probes (TcpExt ListenOverflows +3, ListenDrops +4 in network namespace net:[4026531840])"},
		{"queue overflowed in a burst", probe.Timeout, self,
			snap(map[string]int64{kstat.ListenOverflows: 0, kstat.SyncookiesSent: 0}, nil),
			snap(map[string]int64{kstat.ListenOverflows: 1, kstat.SyncookiesSent: 2}, nil), Overloaded, Likely,
			"during the probes (TcpExt ListenOverflows +1, ListenDrops +0 in network namespace net:[4026531840]); it sent 2 SYN cookies meanwhile; its queue is 0 of 128 now: it fills in bursts"},
		{"overflows elsewhere, this one refused", probe.Refused, fakeHost{addrs: selfAddrs()},
			snap(map[string]int64{kstat.ListenOverflows: 0}, nil),
			snap(map[string]int64{kstat.ListenOverflows: 5}, nil), NotListening, Confirmed, ""},
	}
	ladder := []Stage{{DNSCheck, CountersCheck}, {TCPCheck, HostCheck}, {SocketsCheck, KernelCheck}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counters := &fakeCounters{snaps: []kstat.Snapshot{tt.before, tt.after}}
			opt := Options{Dial: dialClass(tt.class), Sockets: tt.host, Firewall: tt.host, Counters: counters, Ladder: ladder, Probes: 1}
			r := Run(context.Background(), endpoint.Endpoint{Host: "198.18.0.2", Port: 5432}, opt)
			var b strings.Builder
			r.WriteText(&b, TextOptions{})
			if r.Cause != tt.cause || r.Confidence != tt.conf {
				t.Fatalf("cause %s (%s), want %s (%s)\n%s", r.Cause, r.Confidence, tt.cause, tt.conf, b.String())
			}
			if tt.evidence != "" && !strings.Contains(r.Findings[0].Evidence, tt.evidence) {
				t.Errorf("evidence %q\nwant %q", r.Findings[0].Evidence, tt.evidence)
			}
			for _, f := range r.Findings {
				if f.Cause == ConntrackFull && tt.cause != ConntrackFull {
					t.Errorf("finding %+v", f)
				}
			}
		})
	}
}

func selfAddrs() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("198.18.0.2/24")}
}

// TestKernelCheckSkips: counters that cannot be read, or of two different
// namespaces, make the checks say so, and change no cause.
func TestKernelCheckSkips(t *testing.T) {
	other := snap(nil, nil)
	other.Netns++
	for _, tt := range []struct {
		name               string
		counters           *fakeCounters
		counters1, kernel1 Status
		detail             string
	}{
		{"unreadable", &fakeCounters{err: errors.New("no /proc")}, Error, Skip, "no counters from before the probes"},
		{"other namespace", &fakeCounters{snaps: []kstat.Snapshot{snap(nil, nil), other}}, Info, Error, "snapshots of different network namespaces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host := fakeHost{addrs: selfAddrs()}
			opt := Options{Dial: dialClass(probe.Refused), Sockets: host, Firewall: host, Counters: tt.counters, Probes: 1,
				Ladder: []Stage{{DNSCheck, CountersCheck}, {TCPCheck, HostCheck}, {SocketsCheck, KernelCheck}}}
			r := Run(context.Background(), endpoint.Endpoint{Host: "198.18.0.2", Port: 5432}, opt)
			got := map[string]CheckRecord{}
			for _, c := range r.Checks {
				got[c.Name] = c
			}
			if got["counters"].Status != tt.counters1 || got["kernel"].Status != tt.kernel1 || !strings.Contains(got["kernel"].Detail, tt.detail) {
				t.Errorf("counters %+v, kernel %+v", got["counters"], got["kernel"])
			}
			if r.Cause != NotListening {
				t.Errorf("cause %s, want not-listening", r.Cause)
			}
		})
	}
}
