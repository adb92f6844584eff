package hub

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/probe"
)

// TestHistoryRing: a pair's history keeps its last historyLen results,
// oldest first, each as it came (class, errno, rtt, time, error, and the
// address of its time, across a change of it), in a slice that never
// grows past historyLen.
func TestHistoryRing(t *testing.T) {
	h := &Hub{cells: map[pair]*cell{}}
	a1, a2 := netip.MustParseAddrPort("198.18.0.1:5432"), netip.MustParseAddrPort("[fd00::1]:5432")
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	var sent []agent.Result
	for _, n := range []int{1, 2, 5, 60, historyLen - 1, historyLen, historyLen + 1, 3*historyLen + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			clear(h.cells)
			sent = sent[:0]
			for i := range n {
				res := agent.Result{Source: "a", Target: "db:5432", Addr: a1,
					Class: probe.Classes[i%len(probe.Classes)], Errno: i % (agent.MaxErrno + 1),
					RTT: agent.Duration(i) * agent.Duration(time.Microsecond), Time: t0.Add(time.Duration(i) * time.Second)}
				if i%7 == 3 {
					res.Error = fmt.Sprintf("error %d", i)
				}
				if i >= n/2 {
					res.Addr = a2 // a reload moved the target
				}
				h.update(res)
				sent = append(sent, res)
			}
			want := sent[max(0, n-historyLen):]
			got := h.History("a", "db:5432")
			if len(got) != len(want) {
				t.Fatalf("%d results kept, want %d", len(got), len(want))
			}
			for i := range want {
				w, g := want[i], got[i]
				if !g.Time.Equal(w.Time) || g.Source != w.Source || g.Target != w.Target || g.Addr != w.Addr ||
					g.Class != w.Class || g.Errno != w.Errno || g.RTT != w.RTT || g.Error != w.Error {
					t.Fatalf("result %d is %+v, want %+v", i, g, w)
				}
			}
			if c := cap(h.cells[pair{"a", "db:5432"}].history); c > historyLen {
				t.Errorf("the history's slice holds %d, more than %d", c, historyLen)
			}
		})
	}
}
