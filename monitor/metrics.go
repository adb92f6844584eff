package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the monitor's Prometheus series, named in the spirit of
// blackbox_exporter and labelled endpoint="NAME" (plus source for results
// from remote agents). Register them on your own registry, never the global one.
type Metrics struct {
	// pairs are the series of each endpoint × source (success, duration,
	// failures, transitions, up, phase, cert expiry): a hub's 100,000 pairs
	// as client_golang vectors held 2.8 KB each (a histogram's 1.4 KB, label
	// pairs copied into every series), here some 350 bytes.
	pairs       *pairMetrics
	lateness    prometheus.Histogram
	dropped     prometheus.Counter
	written     prometheus.Counter
	writeErrors prometheus.Counter
	// storeHealthy is 0 once every write for Options.StoreGrace has failed.
	storeHealthy prometheus.Gauge
}

// durationBuckets are reach_probe_duration_seconds' upper bounds.
var durationBuckets = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics creates the monitor's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pairs: newPairMetrics(),
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
	reg.MustRegister(m.pairs, m.lateness, m.dropped, m.written, m.writeErrors, m.storeHealthy)
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
	m.pairs.forget(endpoint, source)
}

// pair is the series of endpoint seen from source, created on first use.
func (m *Metrics) pair(endpoint, source string) *pairSeries {
	return m.pairs.get(endpoint, source)
}
