package monitor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/probe"
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
	// phase is the last probe's time in each layer; certExpiry the
	// seconds left on the server's certificate (URL targets).
	phase      *prometheus.GaugeVec
	certExpiry *prometheus.GaugeVec
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
	m.phase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reach_probe_phase_seconds", Help: "The last probe's time in each phase: connect (TCP), tls (the handshake), first_byte (the application's answer).",
	}, []string{"endpoint", "source", "phase"})
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reach_tls_cert_expiry_seconds", Help: "Seconds until the server certificate's NotAfter, at the last probe (negative: expired).",
	}, []string{"endpoint", "source"})
	m.storeHealthy.Set(1)
	reg.MustRegister(m.success, m.duration, m.failures, m.transitions, m.up, m.lateness, m.dropped, m.written, m.writeErrors,
		m.storeHealthy, m.phase, m.certExpiry)
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
	m.phase.DeletePartialMatch(l)
	m.certExpiry.Delete(l)
	m.transitions.DeletePartialMatch(l)
}

// layers sets the phase durations and the certificate's expiry of a probe
// of a URL target (labels l: endpoint, source).
func (m *Metrics) layers(l []string, s Sample, r probe.Result) {
	if s.Layer == "" {
		return
	}
	m.phase.WithLabelValues(l[0], l[1], "connect").Set(r.RTT.Seconds())
	if r.TLS != nil {
		m.phase.WithLabelValues(l[0], l[1], "tls").Set(s.TLS.Seconds())
	}
	if r.App != nil {
		m.phase.WithLabelValues(l[0], l[1], "first_byte").Set(s.FirstByte.Seconds())
	}
	if !s.CertExpiry.IsZero() {
		m.certExpiry.WithLabelValues(l...).Set(s.CertExpiry.Sub(s.Time).Seconds())
	}
}
