package hub

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/probe"
)

// counterValue reads a counter from reg: the one whose labels include
// every name=value pair in labels; -1 when there is none.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// A token holder forges results: each is refused (or its text cut) and
// counted by reason, in the reply and in the hub's metric; only the honest
// result reaches the sink and the matrix. All were accepted: 2,000 invented
// classes became 2,000 series, a transition was stored in year 1.
func TestHostileForgedResults(t *testing.T) {
	open := netip.MustParseAddrPort("127.0.0.1:1")
	h, srv := newTestHub(t, Config{
		Interval: 10 * time.Second, Timeout: 3 * time.Second,
		Hosts: []HostConfig{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1")},
			{Name: "b", Addr: netip.MustParseAddr("127.0.0.2")}},
		Pairs: []PairConfig{{From: "a", To: open.String()}},
	})
	reg := prometheus.NewRegistry()
	h.Metrics = NewMetrics(reg)
	sink := &memSink{}
	h.Sink = sink
	now := time.Now()
	good := agent.Result{Target: open.String(), Class: probe.Refused, Errno: 111,
		RTT: agent.Duration(time.Millisecond), Time: now.Add(-time.Second), Error: "connection refused"}
	with := func(f func(*agent.Result)) agent.Result { r := good; f(&r); return r }
	cases := []struct {
		name string
		res  agent.Result
		why  agent.Reason
	}{
		{"forged class", with(func(r *agent.Result) { r.Class = "<script>alert(1)</script>" }), agent.RefusedClass},
		{"empty class", with(func(r *agent.Result) { r.Class = "" }), agent.RefusedClass},
		{"negative rtt", with(func(r *agent.Result) { r.RTT = agent.Duration(-5 * time.Second) }), agent.RefusedRTT},
		{"rtt beyond timeout", with(func(r *agent.Result) {
			r.RTT = agent.Duration(3*time.Second + RTTMargin + time.Millisecond)
		}), agent.RefusedRTT},
		{"errno", with(func(r *agent.Result) { r.Errno = -1 }), agent.RefusedErrno},
		{"year 1", with(func(r *agent.Result) { r.Time = time.Time{} }), agent.RefusedTooOld},
		{"older than a buffer", with(func(r *agent.Result) {
			r.Time = now.Add(-Window(h.lists["a"]) - time.Minute)
		}), agent.RefusedTooOld},
		{"far future", with(func(r *agent.Result) { r.Time = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }),
			agent.RefusedFuture},
		{"beyond the skew", with(func(r *agent.Result) { r.Time = now.Add(MaxSkew + time.Minute) }),
			agent.RefusedFuture},
		{"unassigned pair", with(func(r *agent.Result) { r.Target = "127.0.0.2:22" }), agent.RefusedUnassigned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(c.why))
			var reply agent.IngestReply
			if _, err := call(nil, srv.URL, http.MethodPost, agent.PathResults, nil,
				agent.Batch{Agent: "a", Results: []agent.Result{c.res}}, &reply); err != nil {
				t.Fatal(err)
			}
			if reply.Accepted != 0 || reply.Rejected != 1 || reply.Refused[c.why] != 1 {
				t.Errorf("reply %+v, want 1 refused for %s", reply, c.why)
			}
			after := counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(c.why))
			if after != before+1 {
				t.Errorf("reach_hub_rejected_results_total{reason=%q} went %v -> %v, want +1", c.why, before, after)
			}
		})
	}
	// An agent the config does not list.
	var reply agent.IngestReply
	if _, err := call(nil, srv.URL, http.MethodPost, agent.PathResults, nil,
		agent.Batch{Agent: "nobody", Results: []agent.Result{good, good}}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Refused[agent.RefusedUnknownAgent] != 2 {
		t.Errorf("unknown agent: reply %+v, want 2 refused", reply)
	}
	if got := sink.results(); len(got) != 0 {
		t.Fatalf("the sink got forged results: %+v", got)
	}

	// A 7.8 MB error text is cut, the result kept; a skewed time within
	// MaxSkew is taken as the hub's now.
	huge := with(func(r *agent.Result) { r.Error = strings.Repeat("é", 3_900_000) })
	skewed := with(func(r *agent.Result) { r.Time = time.Now().Add(MaxSkew / 2) })
	if _, err := call(nil, srv.URL, http.MethodPost, agent.PathResults, nil,
		agent.Batch{Agent: "a", Results: []agent.Result{huge, skewed}}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Accepted != 2 || reply.Rejected != 0 || reply.Truncated != 1 {
		t.Errorf("huge error text: reply %+v, want 2 accepted, 1 truncated", reply)
	}
	got := sink.results()
	if len(got) != 2 {
		t.Fatalf("sink has %d results, want 2", len(got))
	}
	if n := len(got[0].Error); n > agent.MaxErrorText || !strings.HasPrefix(got[0].Error, "éé") ||
		!strings.HasSuffix(got[0].Error, "(cut by the hub)") {
		t.Errorf("error text of %d bytes stored: %.40q…", n, got[0].Error)
	}
	if got[1].Time.After(time.Now()) {
		t.Errorf("a skewed time was stored as %v, in the future", got[1].Time)
	}
	if v := counterValue(t, reg, "reach_hub_truncated_errors_total"); v != 1 {
		t.Errorf("reach_hub_truncated_errors_total = %v, want 1", v)
	}
	m := h.Matrix()
	if len(m.Targets) != 1 || m.Cells[0][0] == nil || m.Cells[0][0].Class != probe.Refused {
		t.Errorf("matrix %+v, want a's one pair, refused", m)
	}
	for _, r := range agent.Reasons {
		t.Logf("rejected %-14s %v", r, counterValue(t, reg, "reach_hub_rejected_results_total", "reason", string(r)))
	}
}
