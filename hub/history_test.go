package hub

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/probe"
)

// TestHistoryRing: a pair's history keeps its last historyLen results,
// oldest first, each as it came (class, errno, rtt, time, error, and the
// address of its time, across a change of it), in slices that never grow
// past historyLen; a pair without error texts or a moved address keeps
// its records alone, 24 bytes each.
func TestHistoryRing(t *testing.T) {
	if n := unsafe.Sizeof(record{}); n > 24 {
		t.Errorf("a history record takes %d bytes, more than 24", n)
	}
	h := &Hub{cells: map[pair]*cell{}}
	a1, a2 := netip.MustParseAddrPort("198.18.0.1:5432"), netip.MustParseAddrPort("[fd00::1]:5432")
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	const never = -1
	for _, c := range []struct{ n, errFrom, addrFrom int }{
		{1, never, never}, {2, 1, 1}, {5, 0, 3}, {60, 3, 30}, {historyLen - 1, never, 1},
		{historyLen, 10, never}, {historyLen + 1, never, never}, {3*historyLen + 7, 3, 2 * historyLen},
		{2*historyLen + 5, historyLen + 3, historyLen + 50}, {historyLen + 30, never, never},
	} {
		t.Run(fmt.Sprintf("%d-err%d-addr%d", c.n, c.errFrom, c.addrFrom), func(t *testing.T) {
			clear(h.cells)
			var sent []agent.Result
			for i := range c.n {
				res := agent.Result{Source: "a", Target: "db:5432", Addr: a1,
					Class: probe.Classes[i%len(probe.Classes)], Errno: i % (agent.MaxErrno + 1),
					RTT: agent.Duration(i) * agent.Duration(time.Microsecond), Time: t0.Add(time.Duration(i) * time.Second)}
				if c.errFrom != never && i >= c.errFrom && i%3 != 0 {
					res.Error = fmt.Sprintf("error %d", i/2) // some repeated, some not
				}
				if c.addrFrom != never && i >= c.addrFrom {
					res.Addr = a2 // a reload moved the target
				}
				h.update(res)
				sent = append(sent, res)
			}
			want := sent[max(0, c.n-historyLen):]
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
			cl := h.cells[pair{"a", "db:5432"}]
			if cap(cl.history) > historyLen || cap(cl.errs) > historyLen || cap(cl.addrs) > historyLen {
				t.Errorf("the history's slices hold %d, %d and %d, more than %d",
					cap(cl.history), cap(cl.errs), cap(cl.addrs), historyLen)
			}
			if c.errFrom == never && cl.errs != nil || c.addrFrom == never && cl.addrs != nil {
				t.Errorf("a pair without error texts or a moved address keeps them: %d texts, %d addresses",
					len(cl.errs), len(cl.addrs))
			}
		})
	}
}
