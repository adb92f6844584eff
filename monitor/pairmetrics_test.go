package monitor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/probe"
)

// vecMetrics are the per-pair series as client_golang's vectors, which
// pairMetrics replaced: the reference it must scrape the same as.
type vecMetrics struct {
	success, up, phase, certExpiry *prometheus.GaugeVec
	duration                       *prometheus.HistogramVec
	failures, transitions          *prometheus.CounterVec
}

func newVecMetrics(reg prometheus.Registerer) *vecMetrics {
	l := []string{"endpoint", "source"}
	v := &vecMetrics{
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reach_probe_success",
			Help: "1 if the last probe was healthy (by the endpoint's expect and latency threshold), else 0."}, l),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "reach_probe_duration_seconds",
			Help: "Time a probe spent connecting.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, l),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reach_probe_failures_total",
			Help: "Unhealthy probes by probe class and the doctor's cause id (\"undiagnosed\" until the doctor reported)."},
			[]string{"endpoint", "source", "class", "cause"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reach_state_transitions_total",
			Help: "State changes after rise/fall, by the state entered."}, []string{"endpoint", "source", "to"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reach_endpoint_up",
			Help: "1 if the endpoint is up after rise/fall, 0 if down, -1 if unknown."}, l),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reach_probe_phase_seconds",
			Help: "The last probe's time in each phase: connect (TCP), tls (the handshake), first_byte (the application's answer)."},
			[]string{"endpoint", "source", "phase"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reach_tls_cert_expiry_seconds",
			Help: "Seconds until the server certificate's NotAfter, at the last probe (negative: expired)."}, l),
	}
	reg.MustRegister(v.success, v.duration, v.failures, v.transitions, v.up, v.phase, v.certExpiry)
	return v
}

// TestPairMetricsScrapeAsVectors: random probes, state changes, failures,
// layers and forgotten pairs, applied to pairMetrics and to client_golang's
// vectors, scrape the same (names, help, types, labels, values, buckets),
// and every counter and histogram has a created timestamp.
func TestPairMetricsScrapeAsVectors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Bucket bounds themselves, either side of them, zero and past the last.
	rtts := []time.Duration{0, 500 * time.Microsecond, 501 * time.Microsecond, time.Millisecond,
		2500 * time.Microsecond, 99 * time.Millisecond, time.Second, 10 * time.Second, 11 * time.Second, 30 * time.Second}
	states := []State{StateUp, StateDown, StateUnknown}
	causes := []string{"undiagnosed", "not-listening", "firewall-drop"}
	for round := range 20 {
		regNew, regRef := prometheus.NewRegistry(), prometheus.NewRegistry()
		mt, ref := NewMetrics(regNew), newVecMetrics(regRef)
		// The other metrics NewMetrics registers, so both have them.
		regRef.MustRegister(mt.lateness, mt.dropped, mt.written, mt.writeErrors, mt.storeHealthy)
		for range 400 {
			e, src := fmt.Sprint("ep-", rng.IntN(6)), []string{LocalSource, "agent-1", "agent-2"}[rng.IntN(3)]
			ps := mt.pair(e, src)
			switch op := rng.IntN(10); {
			case op < 4:
				ok, rtt := rng.IntN(2) == 0, rtts[rng.IntN(len(rtts))]
				ps.probed(ok, rtt)
				ref.success.WithLabelValues(e, src).Set(float64(boolInt(ok)))
				ref.duration.WithLabelValues(e, src).Observe(rtt.Seconds())
			case op == 4:
				st := states[rng.IntN(len(states))]
				ps.setUp(st)
				ref.up.WithLabelValues(e, src).Set(stateValue(st))
			case op == 5:
				c, cause := probe.Classes[1+rng.IntN(3)], causes[rng.IntN(len(causes))]
				ps.failed(c, cause)
				ref.failures.WithLabelValues(e, src, string(c), cause).Inc()
			case op == 6:
				st := states[rng.IntN(len(states))]
				ps.transitioned(st)
				ref.transitions.WithLabelValues(e, src, string(st)).Inc()
			case op == 7:
				at := time.Unix(1_800_000_000, 0)
				s := Sample{Layer: "https", Time: at, TLS: rtts[rng.IntN(len(rtts))], FirstByte: rtts[rng.IntN(len(rtts))]}
				r := probe.Result{RTT: rtts[rng.IntN(len(rtts))]}
				if rng.IntN(2) == 0 {
					r.TLS = &probe.TLSResult{}
					s.CertExpiry = at.Add(time.Duration(rng.IntN(100)-50) * time.Hour)
				}
				if rng.IntN(2) == 0 {
					r.App = &app.Result{}
				}
				if rng.IntN(5) == 0 {
					s.Layer = "" // a plain TCP probe: no layers
				}
				ps.layers(s, r)
				if s.Layer != "" {
					ref.phase.WithLabelValues(e, src, "connect").Set(r.RTT.Seconds())
					if r.TLS != nil {
						ref.phase.WithLabelValues(e, src, "tls").Set(s.TLS.Seconds())
					}
					if r.App != nil {
						ref.phase.WithLabelValues(e, src, "first_byte").Set(s.FirstByte.Seconds())
					}
					if !s.CertExpiry.IsZero() {
						ref.certExpiry.WithLabelValues(e, src).Set(s.CertExpiry.Sub(s.Time).Seconds())
					}
				}
			case op == 8 && rng.IntN(4) == 0:
				mt.forget(src, e)
				l := prometheus.Labels{"endpoint": e, "source": src}
				ref.success.Delete(l)
				ref.duration.Delete(l)
				ref.up.Delete(l)
				ref.failures.DeletePartialMatch(l)
				ref.phase.DeletePartialMatch(l)
				ref.certExpiry.Delete(l)
				ref.transitions.DeletePartialMatch(l)
			}
		}
		got, want := scrapeText(t, regNew), scrapeText(t, regRef)
		if got != want {
			t.Fatalf("round %d: pairMetrics scrape:\n%s\nclient_golang's vectors:\n%s", round, got, want)
		}
	}
}

// scrapeText gathers reg as text, after checking that every counter and
// histogram has a created timestamp and clearing it (the two sets of
// series are created a moment apart).
func scrapeText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	for _, f := range fams {
		for _, m := range f.Metric {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				if m.Counter.CreatedTimestamp == nil {
					t.Errorf("%s %v has no created timestamp", f.GetName(), m.Label)
				}
				m.Counter.CreatedTimestamp = nil
			case dto.MetricType_HISTOGRAM:
				if m.Histogram.CreatedTimestamp == nil {
					t.Errorf("%s %v has no created timestamp", f.GetName(), m.Label)
				}
				m.Histogram.CreatedTimestamp = nil
			}
		}
		out += prototext.Format(f) + "\n"
	}
	return out
}
