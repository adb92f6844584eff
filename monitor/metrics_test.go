package monitor

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reach-tools/reach/probe"
)

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		rec := &recorder{}
		e := ep("db", 5432, time.Second)
		m, err := New(t.Context(), &Config{Endpoints: []Endpoint{e}, Alerts: Alerts{Rise: 1, Fall: 1}},
			Options{Metrics: NewMetrics(reg), Diagnoser: rec})
		if err != nil {
			t.Fatal(err)
		}
		m.Observe(t.Context(), LocalSource, e, time.Now(), probe.Result{Class: probe.Open, RTT: 2 * time.Millisecond})
		m.Observe(t.Context(), LocalSource, e, time.Now(), probe.Result{Class: probe.Refused})
		synctest.Wait() // the doctor has reported
		m.Observe(t.Context(), LocalSource, e, time.Now(), probe.Result{Class: probe.Refused})
		m.Observe(t.Context(), "agent-1", e, time.Now(), probe.Result{Class: probe.Timeout})
		m.wg.Wait()

		got := gathered(t, reg)
		for k, want := range map[string]float64{
			"reach_probe_success,endpoint=db,source=local":                                          0,
			"reach_endpoint_up,endpoint=db,source=local":                                            0,
			"reach_probe_duration_seconds,endpoint=db,source=local":                                 3, // sample count
			"reach_probe_failures_total,cause=undiagnosed,class=refused,endpoint=db,source=local":   1,
			"reach_probe_failures_total,cause=not-listening,class=refused,endpoint=db,source=local": 1,
			"reach_probe_failures_total,cause=undiagnosed,class=timeout,endpoint=db,source=agent-1": 1,
			"reach_state_transitions_total,endpoint=db,source=local,to=up":                          1,
			"reach_state_transitions_total,endpoint=db,source=local,to=down":                        1,
		} {
			if v, ok := got[k]; !ok || v != want {
				t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
			}
		}
		// A removed endpoint's series go away.
		m.Reload(&Config{Endpoints: []Endpoint{ep("other", 1, time.Second)}, Alerts: Alerts{Rise: 1, Fall: 1}})
		for k := range gathered(t, reg) {
			if strings.Contains(k+",", ",source="+LocalSource+",") {
				t.Errorf("%s: still a series for a removed endpoint", k)
			}
		}
	})
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}
