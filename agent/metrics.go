package agent

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reach-tools/reach/internal/version"
)

// metrics are an agent's Prometheus series, in their own registry so two
// agents in one process (tests, benchmarks) never collide.
type metrics struct {
	reg      *prometheus.Registry
	success  *prometheus.GaugeVec     // source, target
	duration *prometheus.HistogramVec // source, target; only source when compact
	last     *prometheus.GaugeVec     // source, target; only when compact
	failures *prometheus.CounterVec   // source, target, class
	pending  prometheus.Gauge
	dropped  prometheus.Counter
	hubErrs  prometheus.Counter
	sent     prometheus.Counter
	interval prometheus.Gauge // what the agent probes at, after its floors
	timeout  prometheus.Gauge
	raised   prometheus.Gauge // 1 when the hub asked for less than the floors
	refused  prometheus.Gauge // targets of the list refused (see Forbidden)
}

func newMetrics(source string, compact bool) *metrics {
	constLabels := prometheus.Labels{"source": source}
	durationLabels := []string{"source", "target"}
	if compact {
		durationLabels = durationLabels[:1]
	}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reach_agent_probe_success", Help: "1 when the last probe from source to target connected, else 0.",
		}, []string{"source", "target"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reach_agent_probe_duration_seconds", Help: "Time spent connecting from source to target.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, durationLabels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reach_agent_probe_failures_total", Help: "Failed probes from source to target, by class.",
		}, []string{"source", "target", "class"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reach_agent_results_pending", Help: "Results waiting to be sent to the hub.", ConstLabels: constLabels,
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "reach_agent_results_dropped_total",
			Help:        "Results dropped because the buffer was full while the hub was unreachable.",
			ConstLabels: constLabels,
		}),
		hubErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reach_agent_hub_errors_total", Help: "Failed calls to the hub.", ConstLabels: constLabels,
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reach_agent_results_sent_total", Help: "Results the hub accepted.", ConstLabels: constLabels,
		}),
		interval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reach_agent_probe_interval_seconds", ConstLabels: constLabels,
			Help: "How often each target is probed: the hub's interval, raised to the agent's floor.",
		}),
		timeout: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reach_agent_probe_timeout_seconds", ConstLabels: constLabels,
			Help: "Each probe's timeout: the hub's, raised to the agent's floor.",
		}),
		raised: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reach_agent_hub_settings_raised", ConstLabels: constLabels,
			Help: "1 when the hub asked for an interval or timeout below the agent's floor, which the agent uses instead.",
		}),
		refused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reach_agent_targets_refused", ConstLabels: constLabels,
			Help: "Targets of the hub's list the agent refuses to probe: link-local, unspecified, broadcast or multicast, not allowed by --allow-targets.",
		}),
	}
	m.reg.MustRegister(m.success, m.duration, m.failures, m.pending, m.dropped, m.hubErrs, m.sent,
		m.interval, m.timeout, m.raised, m.refused, version.Collector())
	if compact {
		m.last = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reach_agent_probe_duration_last_seconds", Help: "Time the last successful probe from source to target took to connect.",
		}, []string{"source", "target"})
		m.reg.MustRegister(m.last)
	}
	return m
}

// observeDuration records a successful probe's connect time.
func (m *metrics) observeDuration(source, target string, d time.Duration) {
	if m.last == nil {
		m.duration.WithLabelValues(source, target).Observe(d.Seconds())
		return
	}
	m.duration.WithLabelValues(source).Observe(d.Seconds())
	m.last.WithLabelValues(source, target).Set(d.Seconds())
}

// settings records the interval and timeout in use, and whether they were
// raised to the floors.
func (m *metrics) settings(interval, timeout time.Duration, raised bool) {
	m.interval.Set(interval.Seconds())
	m.timeout.Set(timeout.Seconds())
	m.raised.Set(0)
	if raised {
		m.raised.Set(1)
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// forget removes the series of a target the hub no longer lists.
func (m *metrics) forget(target string) {
	l := prometheus.Labels{"target": target}
	m.success.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.failures.DeletePartialMatch(l)
	if m.last != nil {
		m.last.DeletePartialMatch(l)
	}
}
