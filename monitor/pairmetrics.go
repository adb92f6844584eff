package monitor

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/probe"
)

// pairMetrics is a prometheus.Collector of the series kept per endpoint ×
// source. It holds their values and makes the series at each scrape, as
// client_golang's vectors would show them: the same names, help, labels,
// types, buckets and created timestamps, and a series only once it was set.
type pairMetrics struct {
	success, duration, failures, transitions, up, phase, certExpiry *prometheus.Desc

	mu    sync.RWMutex
	pairs map[pairKey]*pairSeries
}

type pairKey struct{ endpoint, source string }

// phases are reach_probe_phase_seconds' phase label values.
var phases = [...]string{"connect", "tls", "first_byte"}

// Which of a pair's series without a count of their own exist.
const (
	hasSuccess = 1 << iota
	hasUp
	hasCertExpiry
	hasPhase // << i for phases[i]
)

// pairSeries are one pair's values; its methods are safe for concurrent use.
type pairSeries struct {
	mu         sync.Mutex
	has        uint8
	success    bool
	up         int8    // stateValue
	created    int64   // the duration histogram's first observation, Unix ns; 0: none yet
	count      uint64  // observations
	sum        float64 // of them, in seconds
	buckets    [len(durationBuckets)]uint64
	phase      [len(phases)]float64
	certExpiry float64
	// counters are reach_probe_failures_total's (class, cause) and
	// reach_state_transitions_total's (to, "") series, in creation order.
	counters []pairCounter
}

type pairCounter struct {
	failure bool // else a transition
	labels  [2]string
	n       uint64
	created int64 // Unix ns
}

func newPairMetrics() *pairMetrics {
	l := []string{"endpoint", "source"}
	return &pairMetrics{
		pairs: map[pairKey]*pairSeries{},
		success: prometheus.NewDesc("reach_probe_success",
			"1 if the last probe was healthy (by the endpoint's expect and latency threshold), else 0.", l, nil),
		duration: prometheus.NewDesc("reach_probe_duration_seconds", "Time a probe spent connecting.", l, nil),
		failures: prometheus.NewDesc("reach_probe_failures_total",
			"Unhealthy probes by probe class and the doctor's cause id (\"undiagnosed\" until the doctor reported).",
			append(l, "class", "cause"), nil),
		transitions: prometheus.NewDesc("reach_state_transitions_total",
			"State changes after rise/fall, by the state entered.", append(l, "to"), nil),
		up: prometheus.NewDesc("reach_endpoint_up",
			"1 if the endpoint is up after rise/fall, 0 if down, -1 if unknown.", l, nil),
		phase: prometheus.NewDesc("reach_probe_phase_seconds",
			"The last probe's time in each phase: connect (TCP), tls (the handshake), first_byte (the application's answer).",
			append(l, "phase"), nil),
		certExpiry: prometheus.NewDesc("reach_tls_cert_expiry_seconds",
			"Seconds until the server certificate's NotAfter, at the last probe (negative: expired).", l, nil),
	}
}

// get returns the pair's series, created (without values) if new.
func (p *pairMetrics) get(endpoint, source string) *pairSeries {
	k := pairKey{endpoint, source}
	p.mu.RLock()
	s := p.pairs[k]
	p.mu.RUnlock()
	if s != nil {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s = p.pairs[k]; s == nil {
		s = &pairSeries{}
		p.pairs[k] = s
	}
	return s
}

func (p *pairMetrics) forget(endpoint, source string) {
	p.mu.Lock()
	delete(p.pairs, pairKey{endpoint, source})
	p.mu.Unlock()
}

// probed records a probe's health and duration.
func (s *pairSeries) probed(ok bool, rtt time.Duration) {
	v := rtt.Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.has |= hasSuccess
	s.success = ok
	if s.created == 0 {
		s.created = time.Now().UnixNano()
	}
	s.count++
	s.sum += v
	// As client_golang's histogram: the first bucket whose bound is >= v.
	if i := sort.SearchFloat64s(durationBuckets[:], v); i < len(s.buckets) {
		s.buckets[i]++
	}
}

func (s *pairSeries) setUp(st State) {
	s.mu.Lock()
	s.has |= hasUp
	s.up = int8(stateValue(st))
	s.mu.Unlock()
}

// failed counts an unhealthy probe of class with the doctor's cause.
func (s *pairSeries) failed(class probe.Class, cause string) {
	s.count1(pairCounter{failure: true, labels: [2]string{string(class), cause}})
}

// transitioned counts a state change to st.
func (s *pairSeries) transitioned(to State) {
	s.count1(pairCounter{labels: [2]string{string(to)}})
}

func (s *pairSeries) count1(c pairCounter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.counters {
		if o := &s.counters[i]; o.failure == c.failure && o.labels == c.labels {
			o.n++
			return
		}
	}
	c.n, c.created = 1, time.Now().UnixNano()
	s.counters = append(s.counters, c)
}

// layers sets the phase durations and the certificate's expiry of a probe
// of a URL target.
func (s *pairSeries) layers(smp Sample, r probe.Result) {
	if smp.Layer == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set := func(i int, v float64) { s.has |= hasPhase << i; s.phase[i] = v }
	set(0, r.RTT.Seconds())
	if r.TLS != nil {
		set(1, smp.TLS.Seconds())
	}
	if r.App != nil {
		set(2, smp.FirstByte.Seconds())
	}
	if !smp.CertExpiry.IsZero() {
		s.has |= hasCertExpiry
		s.certExpiry = smp.CertExpiry.Sub(smp.Time).Seconds()
	}
}

// Describe implements prometheus.Collector.
func (p *pairMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.success, p.duration, p.failures, p.transitions, p.up, p.phase, p.certExpiry} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The pairs' lock is held only to
// list them, so a scrape of many does not hold up probes that add one.
func (p *pairMetrics) Collect(ch chan<- prometheus.Metric) {
	type kp struct {
		k pairKey
		s *pairSeries
	}
	p.mu.RLock()
	all := make([]kp, 0, len(p.pairs))
	for k, s := range p.pairs {
		all = append(all, kp{k, s})
	}
	p.mu.RUnlock()
	var out []prometheus.Metric
	for _, x := range all {
		out = x.s.metrics(p, x.k, out[:0])
		for _, m := range out {
			ch <- m
		}
	}
}

// metrics appends the pair's series to out.
func (s *pairSeries) metrics(p *pairMetrics, k pairKey, out []prometheus.Metric) []prometheus.Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(m prometheus.Metric, err error) {
		if err != nil {
			// A label value that is not UTF-8: the scrape says so.
			m = prometheus.NewInvalidMetric(p.success, err)
		}
		out = append(out, m)
	}
	e, src := k.endpoint, k.source
	if s.has&hasSuccess != 0 {
		add(prometheus.NewConstMetric(p.success, prometheus.GaugeValue, float64(boolInt(s.success)), e, src))
	}
	if s.has&hasUp != 0 {
		add(prometheus.NewConstMetric(p.up, prometheus.GaugeValue, float64(s.up), e, src))
	}
	if s.created != 0 {
		buckets := make(map[float64]uint64, len(durationBuckets))
		var cum uint64
		for i, b := range durationBuckets {
			cum += s.buckets[i]
			buckets[b] = cum
		}
		add(prometheus.NewConstHistogramWithCreatedTimestamp(p.duration, s.count, s.sum, buckets,
			time.Unix(0, s.created), e, src))
	}
	for _, c := range s.counters {
		at := time.Unix(0, c.created)
		if c.failure {
			add(prometheus.NewConstMetricWithCreatedTimestamp(p.failures, prometheus.CounterValue, float64(c.n), at,
				e, src, c.labels[0], c.labels[1]))
		} else {
			add(prometheus.NewConstMetricWithCreatedTimestamp(p.transitions, prometheus.CounterValue, float64(c.n), at,
				e, src, c.labels[0]))
		}
	}
	for i, ph := range phases {
		if s.has&(hasPhase<<i) != 0 {
			add(prometheus.NewConstMetric(p.phase, prometheus.GaugeValue, s.phase[i], e, src, ph))
		}
	}
	if s.has&hasCertExpiry != 0 {
		add(prometheus.NewConstMetric(p.certExpiry, prometheus.GaugeValue, s.certExpiry, e, src))
	}
	return out
}
