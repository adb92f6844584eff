package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the monitor's Prometheus series, named in the spirit of
// blackbox_exporter and labelled endpoint="NAME" (plus source for results
// from remote agents). Register them on your own registry, never the global one.
type Metrics struct {
	success     *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	failures    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	up          *prometheus.GaugeVec
	lateness    prometheus.Histogram
	dropped     prometheus.Counter
	written     prometheus.Counter
	writeErrors prometheus.Counter
	// storeHealthy is 0 once every write for Options.StoreGrace has failed.
	storeHealthy prometheus.Gauge
}

// NewMetrics creates the monitor's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reach_probe_success", Help: "1 if the last probe was healthy (by the endpoint's expect and latency threshold), else 0.",
		}, []string{"endpoint", "source"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reach_probe_duration_seconds", Help: "Time a probe spent connecting.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint", "source"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reach_probe_failures_total", Help: "Unhealthy probes by probe class and the doctor's cause id (\"undiagnosed\" until the doctor reported).",
		}, []string{"endpoint", "source", "class", "cause"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reach_state_transitions_total", Help: "State changes after rise/fall, by the state entered.",
		}, []string{"endpoint", "source", "to"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reach_endpoint_up", Help: "1 if the endpoint is up after rise/fall, 0 if down, -1 if unknown.",
		}, []string{"endpoint", "source"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reach_probe_start_lateness_seconds", Help: "How late probes started after their scheduled time.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .015, .02, .03, .05, .075, .1, .2, .5, 1, 5},
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reach_store_dropped_samples_total", Help: "Samples dropped because the store could not keep up.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reach_store_written_samples_total", Help: "Samples written to the store.",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reach_store_write_errors_total", Help: "Failed batch writes (their samples are lost).",
		}),
		storeHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reach_store_healthy", Help: "0 once every write to the store has failed for the grace (--store-grace), 1 otherwise.",
		}),
	}
	m.storeHealthy.Set(1)
	reg.MustRegister(m.success, m.duration, m.failures, m.transitions, m.up, m.lateness, m.dropped, m.written, m.writeErrors,
		m.storeHealthy)
	return m
}

func stateValue(s State) float64 {
	switch s {
	case StateUp:
		return 1
	case StateDown:
		return 0
	}
	return -1
}

// forget removes an endpoint's series after it left the configuration.
func (m *Metrics) forget(source, endpoint string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"endpoint": endpoint, "source": source}
	m.success.Delete(l)
	m.duration.Delete(l)
	m.up.Delete(l)
	m.failures.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
}
