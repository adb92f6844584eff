package monitor

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/bounded"
	"github.com/reach-tools/reach/probe"
)

// Config defaults and limits.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 3 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
	MinInterval     = time.Second
	MaxInterval     = 24 * time.Hour
	maxConfigBytes  = 4 << 20
)

// Expect says what a healthy endpoint looks like.
type Expect string

const (
	ExpectOpen   Expect = "open"   // the port accepts connections (default)
	ExpectClosed Expect = "closed" // the port must stay shut: any class but open is healthy
)

// Endpoint is one thing to watch.
type Endpoint struct {
	Name     string
	Target   endpoint.Endpoint
	Interval time.Duration
	Timeout  time.Duration
	Labels   map[string]string
	Expect   Expect
	// LatencyThreshold, when positive, makes an open probe slower than it a failure.
	LatencyThreshold time.Duration
	// Source and Interface, when set, are where the probes leave from: an
	// address of this host, a network interface (probe.Options). This host
	// not having them fails each probe as local-error, saying what it has.
	Source    netip.Addr
	Interface string
	// DependsOn names the endpoints this one needs: while one of them is
	// down, this one's alerts are held and it is named in that one's.
	DependsOn []string
	// Layers are the checks above TCP that a URL target asks for
	// (https://, mysql://, ...); nil for a plain host:port or tcp://.
	Layers *Layers
}

// Layers is what a URL target checks above TCP, and how (issue 13): the
// TLS handshake of tls://, https://, grpcs://, rediss://, and the
// application's readiness (package app).
type Layers struct {
	// URL is the target as parsed; its Endpoint is the Endpoint's Target.
	URL endpoint.Target
	// ExpectStatus is the set of HTTP statuses that mean healthy (empty:
	// 200-399); ExpectBody must appear in the body.
	ExpectStatus app.StatusSet
	ExpectBody   string
	// CA is a PEM file of the roots that verify the server's certificate
	// (empty: the system's); Roots holds them.
	CA    string
	Roots *x509.CertPool
	// SNI is the name sent in the handshake and verified (empty: the
	// target's host).
	SNI string
	// WarnDays, when positive, makes a certificate with fewer days left
	// than it unhealthy, so it alerts before it expires.
	WarnDays int
}

// TargetString is the target as configured: the URL for a URL target,
// host:port otherwise.
func (e Endpoint) TargetString() string {
	if e.Layers != nil {
		return e.Layers.URL.String()
	}
	return e.Target.String()
}

// Options returns the probe's TLS and application options for the layers.
func (l *Layers) Options() (*probe.TLSOptions, *app.Request) {
	if l == nil {
		return nil, nil
	}
	t, a := probe.Layers(l.URL)
	if t != nil {
		t.ServerName, t.RootCAs = l.SNI, l.Roots
	}
	if a != nil {
		a.ExpectStatus, a.ExpectBody = l.ExpectStatus, l.ExpectBody
	}
	return t, a
}

// Alerts configures state changes and where they are announced.
type Alerts struct {
	Webhook string // http(s) URL; empty disables webhooks
	// Alertmanager is the base URL of a Prometheus Alertmanager (alerts go
	// to its /api/v2/alerts); empty sends none. Firing alerts are posted
	// again every ResendEvery (DefaultResendEvery), well within its
	// resolve_timeout.
	Alertmanager string
	ResendEvery  time.Duration
	// DashboardURL is this dashboard as people reach it, for the links in
	// alerts (Alertmanager's generatorURL); empty: reach watch's --listen.
	DashboardURL string
	Rise         int // consecutive successes before a down endpoint is up (0: DefaultRise)
	Fall         int // consecutive failures before an up endpoint is down (0: DefaultFall)
	// GroupWait holds a down alert this long, so that the alert of what it
	// depends on, going down at about the same time, comes first and names
	// it instead (0: none).
	GroupWait time.Duration
	// RemindEvery repeats the alert of an endpoint still down (0: never).
	RemindEvery time.Duration
	// An endpoint that changes state more than FlapChanges times within
	// FlapWindow is announced as flapping, once (0: never).
	FlapChanges int
	FlapWindow  time.Duration
	// Maintenance windows hold alerts (not probes).
	Maintenance []Window
}

// DefaultResendEvery is how often firing alerts are posted again to
// Alertmanager: below its default resolve_timeout (5m), and each post
// says it holds for four times this (endsAt).
const DefaultResendEvery = time.Minute

// Config is a parsed, validated reach.yaml.
type Config struct {
	Endpoints []Endpoint
	// Warnings are what a valid configuration likely gets wrong, with
	// their lines: a plain TCP check of a MySQL port.
	Warnings []string
	Alerts   Alerts
	// Agents is the agents: section, left for the hub (package hub) to
	// decode with Node.Decode; nil when absent.
	Agents *yaml.Node
}

// ErrConfig marks every configuration error; errors.Is(err, ErrConfig) holds
// for what LoadConfig and ParseConfig return.
var ErrConfig = errors.New("monitor: invalid configuration")

// ConfigError is one problem in a configuration file, at a line.
type ConfigError struct {
	File   string // may be empty
	Line   int    // 1-based; 0 when unknown
	Field  string // e.g. endpoints[2].interval
	Reason string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return ErrConfig }

// ConfigErrors is every problem found in one file, in file order.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *ConfigError and errors.Is find ErrConfig.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	// Bounded: /dev/zero or a huge file must not be read whole before
	// ParseConfig refuses it.
	data, err := bounded.ReadFile(path, "config file", maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("monitor: read config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig validates a configuration; file names the source in errors.
// It reports every problem it finds, each with its line.
func ParseConfig(file string, data []byte) (*Config, error) {
	p := &configParser{file: file}
	if len(data) > maxConfigBytes {
		p.errf(nil, "", "file is %d bytes; the limit is %d", len(data), maxConfigBytes)
		return nil, p.errs
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		p.errs = append(p.errs, yamlError(file, err))
		return nil, p.errs
	}
	cfg := p.document(&doc)
	if cfg != nil {
		cfg.Warnings = p.warns
	}
	p.oneDocument(dec)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *ConfigError) int { return a.Line - b.Line })
		return nil, p.errs
	}
	return cfg, nil
}

// oneDocument refuses a second YAML document (after ---), which would
// otherwise be ignored without a word: its endpoints never watched. An empty
// one (a trailing ---) holds nothing to lose. The input is bounded, so is
// the loop: each Decode consumes some of it.
func (p *configParser) oneDocument(dec *yaml.Decoder) {
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		switch {
		case errors.Is(err, io.EOF):
			return
		case err != nil:
			p.errs = append(p.errs, yamlError(p.file, err))
			return
		case len(doc.Content) == 1 && doc.Content[0].ShortTag() == "!!null":
			continue
		}
		p.errf(&doc, "", "a second YAML document starts here (---); reach reads one document: "+
			"move what follows into the first and remove this ---")
		return
	}
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

func yamlError(file string, err error) *ConfigError {
	ce := &ConfigError{File: file, Reason: "not valid YAML: " + err.Error()}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		ce.Line, _ = strconv.Atoi(m[1])
		ce.Reason = "not valid YAML: " + m[2]
	}
	return ce
}

type configParser struct {
	file   string
	errs   ConfigErrors
	warns  []string
	covers []windowNames
}

// warnf records a warning: a valid configuration that likely does harm.
func (p *configParser) warnf(n *yaml.Node, field, format string, args ...any) {
	w := &ConfigError{File: p.file, Field: field, Reason: fmt.Sprintf(format, args...)}
	if n != nil {
		w.Line = n.Line
	}
	p.warns = append(p.warns, w.Error())
}

// layers reads the options of a URL target's layers.
func (p *configParser) layers(m map[string]*yaml.Node, field string, ep *Endpoint) {
	scheme, protocol, tls := "tcp", "", false
	if ep.Layers != nil {
		scheme, protocol, tls = ep.Layers.URL.Scheme, ep.Layers.URL.Protocol(), ep.Layers.URL.TLS()
	}
	only := func(key string, ok bool, what string) *yaml.Node {
		v := m[key]
		if v == nil {
			return nil
		}
		if !ok {
			p.errf(v, join(field, key), "applies to %s targets only; this target is %s://", what, scheme)
			return nil
		}
		if v.Kind != yaml.ScalarNode {
			p.errf(v, join(field, key), "want a plain value, got %s", kindName(v))
			return nil
		}
		return v
	}
	if v := only("expect_status", protocol == "http", "http:// and https://"); v != nil {
		set, err := app.ParseStatusSet(v.Value)
		if err != nil {
			p.errf(v, join(field, "expect_status"), "%v", err)
		}
		ep.Layers.ExpectStatus = set
	}
	if v := only("expect_body", protocol == "http", "http:// and https://"); v != nil {
		ep.Layers.ExpectBody = v.Value
	}
	if v := only("sni", tls, "TLS (tls://, https://, grpcs://, rediss://)"); v != nil {
		ep.Layers.SNI = v.Value
	}
	if v := only("ca", tls, "TLS (tls://, https://, grpcs://, rediss://)"); v != nil {
		ep.Layers.CA = v.Value
		pem, err := bounded.ReadFile(v.Value, "CA file", maxPEMFile)
		if err != nil {
			p.errf(v, join(field, "ca"), "%v", err)
		} else if ep.Layers.Roots = x509.NewCertPool(); !ep.Layers.Roots.AppendCertsFromPEM(pem) {
			p.errf(v, join(field, "ca"), "%s holds no PEM certificate", v.Value)
		}
	}
	if v := only("warn_days", tls, "TLS (tls://, https://, grpcs://, rediss://)"); v != nil {
		n, err := strconv.Atoi(v.Value)
		if err != nil || n < 1 || n > 3650 {
			p.errf(v, join(field, "warn_days"), "%q: want a whole number of days, 1 to 3650", v.Value)
		}
		ep.Layers.WarnDays = n
	}
}

// maxPEMFile bounds a CA file.
const maxPEMFile = 1 << 20

func (p *configParser) errf(n *yaml.Node, field, format string, args ...any) {
	e := &ConfigError{File: p.file, Field: field, Reason: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	p.errs = append(p.errs, e)
}

// mapping returns the key/value pairs of a mapping node, refusing duplicate
// and unknown keys, aliases and merge keys.
func (p *configParser) mapping(n *yaml.Node, field string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errf(n, field, "want a mapping (key: value lines), got %s", kindName(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errf(k, field, "keys must be plain words, got %s", kindName(k))
			continue
		}
		if v.Kind == yaml.AliasNode || k.Value == "<<" {
			p.errf(k, join(field, k.Value), "YAML aliases and merge keys are not supported; write the value out")
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			p.errf(k, field, "unknown field %q (known: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errf(k, join(field, k.Value), "set twice")
			continue
		}
		out[k.Value] = v
	}
	return out
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// shortDuration writes 24h and 1m, not 24h0m0s and 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func (p *configParser) document(doc *yaml.Node) *Config {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.errf(nil, "", "empty configuration; want an endpoints: list")
		return nil
	}
	top := p.mapping(doc.Content[0], "", "endpoints", "defaults", "alerts", "agents")
	if top == nil {
		return nil
	}
	cfg := &Config{Alerts: Alerts{Rise: DefaultRise, Fall: DefaultFall, ResendEvery: DefaultResendEvery},
		Agents: top["agents"]}
	defInterval, defTimeout := DefaultInterval, time.Duration(0)
	if d := top["defaults"]; d != nil {
		m := p.mapping(d, "defaults", "interval", "timeout")
		if v := m["interval"]; v != nil {
			defInterval = p.duration(v, "defaults.interval", MinInterval, MaxInterval)
		}
		if v := m["timeout"]; v != nil {
			defTimeout = p.duration(v, "defaults.timeout", time.Millisecond, MaxInterval)
		}
	}
	if a := top["alerts"]; a != nil {
		m := p.mapping(a, "alerts", "webhook", "rise", "fall", "alertmanager", "resend_every",
			"dashboard_url", "group_wait", "remind_every", "flapping", "maintenance")
		if v := m["webhook"]; v != nil {
			cfg.Alerts.Webhook = p.webhook(v, "alerts.webhook")
		}
		p.alerting(m, &cfg.Alerts)
		if v := m["rise"]; v != nil {
			cfg.Alerts.Rise = p.count(v, "alerts.rise")
		}
		if v := m["fall"]; v != nil {
			cfg.Alerts.Fall = p.count(v, "alerts.fall")
		}
	}
	eps := top["endpoints"]
	if eps == nil {
		if cfg.Agents == nil {
			p.errf(doc.Content[0], "", "no endpoints: list; want at least one endpoint to watch (or an agents: section)")
			return nil
		}
		return cfg
	}
	if eps.Kind == yaml.SequenceNode && len(eps.Content) == 0 || eps.ShortTag() == "!!null" {
		p.errf(eps, "endpoints", "the list is empty; add at least one endpoint (- name: NAME, target: HOST:PORT)")
		return nil
	}
	if eps.Kind != yaml.SequenceNode {
		p.errf(eps, "endpoints", "want a list of endpoints (lines starting with '- name:'), got %s", kindName(eps))
		return nil
	}
	seen := map[string]int{}
	for i, n := range eps.Content {
		ep, ok := p.endpoint(n, fmt.Sprintf("endpoints[%d]", i), defInterval, defTimeout)
		if !ok {
			continue
		}
		if line, dup := seen[ep.Name]; dup {
			p.errf(n, fmt.Sprintf("endpoints[%d].name", i), "%q is already used on line %d; names must be unique", ep.Name, line)
			continue
		}
		seen[ep.Name] = n.Line
		cfg.Endpoints = append(cfg.Endpoints, ep)
	}
	p.dependencies(cfg, eps)
	p.windowEndpoints(cfg)
	return cfg
}

var validLabel = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func (p *configParser) endpoint(n *yaml.Node, field string, defInterval, defTimeout time.Duration) (Endpoint, bool) {
	before := len(p.errs)
	m := p.mapping(n, field, "name", "target", "interval", "timeout", "labels", "expect", "latency_threshold", "source", "interface", "depends_on",
		"expect_status", "expect_body", "ca", "sni", "warn_days")
	if m == nil {
		return Endpoint{}, false
	}
	ep := Endpoint{Interval: defInterval, Timeout: defTimeout, Expect: ExpectOpen}
	if v := p.scalar(m["name"], n, join(field, "name")); v != nil {
		if !endpoint.ValidName(v.Value) {
			p.errf(v, join(field, "name"), "%q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", v.Value)
		}
		ep.Name = v.Value
	}
	if v := p.scalar(m["target"], n, join(field, "target")); v != nil {
		t, err := endpoint.ParseTarget(v.Value)
		if err != nil {
			p.errf(v, join(field, "target"), "%v", err)
		}
		ep.Target = t.Endpoint
		if err == nil && t.Scheme != "tcp" {
			ep.Layers = &Layers{URL: t}
		}
		if err == nil && t.Scheme == "tcp" && t.Endpoint.Port == 3306 {
			p.warnf(v, join(field, "target"), "%s is a plain TCP check of MySQL's port: MySQL and MariaDB count each "+
				"connect-and-close as a connection error against this host and block it after max_connect_errors "+
				"(100 by default) until FLUSH HOSTS; write target: mysql://%s, which ends each handshake cleanly",
				v.Value, t.Endpoint)
		}
	}
	p.layers(m, field, &ep)
	if v := m["interval"]; v != nil {
		ep.Interval = p.duration(v, join(field, "interval"), MinInterval, MaxInterval)
	}
	if v := m["timeout"]; v != nil {
		ep.Timeout = p.duration(v, join(field, "timeout"), time.Millisecond, MaxInterval)
	}
	if ep.Timeout == 0 {
		ep.Timeout = min(DefaultTimeout, ep.Interval)
	}
	if ep.Interval > 0 && ep.Timeout > ep.Interval {
		line, from := n, " (from defaults.timeout)"
		if m["timeout"] != nil {
			line, from = m["timeout"], ""
		}
		p.errf(line, join(field, "timeout"), "%v%s is longer than the interval %v; a probe must end before the next one starts", ep.Timeout, from, ep.Interval)
	}
	if v := m["expect"]; v != nil {
		if v.Kind != yaml.ScalarNode || (v.Value != string(ExpectOpen) && v.Value != string(ExpectClosed)) {
			p.errf(v, join(field, "expect"), "got %s; want open or closed", kindName(v))
		} else {
			ep.Expect = Expect(v.Value)
		}
	}
	if v := m["latency_threshold"]; v != nil {
		ep.LatencyThreshold = p.duration(v, join(field, "latency_threshold"), time.Microsecond, MaxInterval)
		if ep.LatencyThreshold > 0 && ep.LatencyThreshold >= ep.Timeout {
			p.errf(v, join(field, "latency_threshold"), "%v is not below the timeout %v; it could never trigger", ep.LatencyThreshold, ep.Timeout)
		}
		if ep.Expect == ExpectClosed {
			p.errf(v, join(field, "latency_threshold"), "makes no sense with expect: closed")
		}
	}
	if v := m["source"]; v != nil {
		ep.Source = p.source(v, join(field, "source"), ep.Target)
	}
	if v := m["interface"]; v != nil {
		if v.Kind != yaml.ScalarNode || !probe.ValidInterfaceName(v.Value) {
			p.errf(v, join(field, "interface"), "got %s; want a network interface name such as eth0 (see ip link)", kindName(v))
		} else {
			ep.Interface = v.Value
		}
	}
	if v := m["depends_on"]; v != nil {
		ep.DependsOn = p.names(v, join(field, "depends_on"))
	}
	if v := m["labels"]; v != nil {
		lm := p.mapping(v, join(field, "labels"))
		if len(lm) > 0 {
			ep.Labels = map[string]string{}
		}
		for k, lv := range lm {
			if !validLabel.MatchString(k) {
				p.errf(lv, join(field, "labels"), "label name %q: want letters, digits and '_', not starting with a digit", k)
				continue
			}
			if lv.Kind != yaml.ScalarNode {
				p.errf(lv, join(join(field, "labels"), k), "want a plain value, got %s", kindName(lv))
				continue
			}
			ep.Labels[k] = lv.Value
		}
	}
	return ep, len(p.errs) == before
}

// source reads an endpoint's source address, which must be of the family of
// a target given as an address (a name is resolved to the source's family).
func (p *configParser) source(v *yaml.Node, field string, target endpoint.Endpoint) netip.Addr {
	a, err := netip.ParseAddr(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil {
		p.errf(v, field, "got %s; want an IP address of this host such as 198.18.0.1 or fd00::1", kindName(v))
		return netip.Addr{}
	}
	a = a.Unmap()
	if t, ok := target.Addr(); ok && t.Unmap().Is4() != a.Is4() {
		p.errf(v, field, "%s cannot reach the target %s: give an address of the target's family", a, target)
		return netip.Addr{}
	}
	return a
}

// scalar returns a required scalar value, reporting a missing or non-scalar one.
func (p *configParser) scalar(v, parent *yaml.Node, field string) *yaml.Node {
	switch {
	case v == nil:
		p.errf(parent, field, "missing; every endpoint needs one")
		return nil
	case v.Kind != yaml.ScalarNode || v.Value == "":
		p.errf(v, field, "want a non-empty value, got %s", kindName(v))
		return nil
	}
	return v
}

func (p *configParser) duration(v *yaml.Node, field string, lo, hi time.Duration) time.Duration {
	if v.Kind != yaml.ScalarNode {
		p.errf(v, field, "want a duration such as 10s or 1m, got %s", kindName(v))
		return 0
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		p.errf(v, field, "%q is not a duration; want e.g. 500ms, 10s or 1m", v.Value)
		return 0
	}
	if d < lo || d > hi {
		p.errf(v, field, "%s is outside %s-%s", shortDuration(d), shortDuration(lo), shortDuration(hi))
		return 0
	}
	return d
}

func (p *configParser) count(v *yaml.Node, field string) int {
	n, err := strconv.Atoi(v.Value)
	if v.Kind != yaml.ScalarNode || err != nil || n < 1 || n > 100 {
		p.errf(v, field, "got %s; want a whole number from 1 to 100", kindName(v))
		return 1
	}
	return n
}

func (p *configParser) webhook(v *yaml.Node, field string) string {
	if v.Kind != yaml.ScalarNode {
		p.errf(v, field, "want a URL, got %s", kindName(v))
		return ""
	}
	// Quote the URL as the logs do: it may carry a secret.
	u, err := url.Parse(v.Value)
	var ue *url.Error
	if errors.As(err, &ue) {
		p.errf(v, field, "not a URL: %v", ue.Err) // ue itself holds the whole URL
		return ""
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		p.errf(v, field, "%q: want an http:// or https:// URL with a host", RedactWebhook(v.Value))
		return ""
	}
	// url.Parse takes any digits for a port; 0 or 99999 failed only when an
	// alert was sent.
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			p.errf(v, field, "%s: port %s is out of range 1-65535", RedactWebhook(v.Value), port)
			return ""
		}
	}
	return v.Value
}
