package monitor

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
)

func TestParseConfigValid(t *testing.T) {
	const in = `
defaults:
  interval: 15s
alerts:
  webhook: http://127.0.0.1:9/hook
  rise: 1
  fall: 2
endpoints:
  - name: db
    target: 127.0.0.1:5432
    labels: {team: data, tier: "1"}
  - name: ssh-closed
    target: "[::1]:23"
    interval: 1m
    timeout: 2s
    expect: closed
  - name: api
    target: localhost:8080
    latency_threshold: 200ms
  - name: api-from-b
    target: 198.18.0.2:8080
    source: 198.18.1.1
    interface: eth1
`
	cfg, err := ParseConfig("reach.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{
		{Name: "db", Target: endpoint.Endpoint{Host: "127.0.0.1", Port: 5432}, Interval: 15 * time.Second, Timeout: DefaultTimeout, Expect: ExpectOpen, Labels: map[string]string{"team": "data", "tier": "1"}},
		{Name: "ssh-closed", Target: endpoint.Endpoint{Host: "::1", Port: 23}, Interval: time.Minute, Timeout: 2 * time.Second, Expect: ExpectClosed},
		{Name: "api", Target: endpoint.Endpoint{Host: "localhost", Port: 8080}, Interval: 15 * time.Second, Timeout: DefaultTimeout, Expect: ExpectOpen, LatencyThreshold: 200 * time.Millisecond},
		{Name: "api-from-b", Target: endpoint.Endpoint{Host: "198.18.0.2", Port: 8080}, Interval: 15 * time.Second, Timeout: DefaultTimeout, Expect: ExpectOpen,
			Source: netip.MustParseAddr("198.18.1.1"), Interface: "eth1"},
	}
	if len(cfg.Endpoints) != len(want) {
		t.Fatalf("got %d endpoints, want %d", len(cfg.Endpoints), len(want))
	}
	for i, w := range want {
		g := cfg.Endpoints[i]
		if g.Name != w.Name || g.Target != w.Target || g.Interval != w.Interval || g.Timeout != w.Timeout ||
			g.Expect != w.Expect || g.LatencyThreshold != w.LatencyThreshold || len(g.Labels) != len(w.Labels) ||
			g.Source != w.Source || g.Interface != w.Interface {
			t.Errorf("endpoint %d = %+v, want %+v", i, g, w)
		}
		for k, v := range w.Labels {
			if g.Labels[k] != v {
				t.Errorf("endpoint %d label %s = %q, want %q", i, k, g.Labels[k], v)
			}
		}
	}
	if !reflect.DeepEqual(cfg.Alerts, Alerts{Webhook: "http://127.0.0.1:9/hook", Rise: 1, Fall: 2, ResendEvery: DefaultResendEvery}) {
		t.Errorf("alerts = %+v", cfg.Alerts)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig("", []byte("endpoints:\n  - {name: a, target: '127.0.0.1:1', interval: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ep := cfg.Endpoints[0]
	// The timeout never exceeds a short interval.
	if ep.Timeout != 2*time.Second || ep.Expect != ExpectOpen {
		t.Errorf("got timeout %v expect %q", ep.Timeout, ep.Expect)
	}
	if cfg.Alerts.Rise != DefaultRise || cfg.Alerts.Fall != DefaultFall {
		t.Errorf("alerts = %+v", cfg.Alerts)
	}
}

// Every testdata/invalid-*.yaml fixture is refused with exactly this error.
var invalidConfigs = map[string]string{
	"invalid-alias.yaml":                 `7: endpoints[1].labels: YAML aliases and merge keys are not supported; write the value out`,
	"invalid-bad-interval.yaml":          `4: endpoints[0].interval: "10x" is not a duration; want e.g. 500ms, 10s or 1m`,
	"invalid-bad-target.yaml":            `3: endpoints[0].target: "ftp://127.0.0.1:21": unknown scheme "ftp"; reach takes grpc://, grpcs://, http://, https://, mysql://, postgres://, redis://, rediss://, tcp://, tls://, or host:port`,
	"invalid-layer-option.yaml":          `4: endpoints[0].expect_status: applies to http:// and https:// targets only; this target is tcp://`,
	"invalid-duplicate-name.yaml":        `4: endpoints[1].name: "db" is already used on line 2; names must be unique`,
	"invalid-expect.yaml":                `4: endpoints[0].expect: got "filtered"; want open or closed`,
	"invalid-missing-target.yaml":        `2: endpoints[0].target: missing; every endpoint needs one`,
	"invalid-empty-endpoints.yaml":       `2: endpoints: the list is empty; add at least one endpoint (- name: NAME, target: HOST:PORT)`,
	"invalid-null-endpoints.yaml":        `3: endpoints: the list is empty; add at least one endpoint (- name: NAME, target: HOST:PORT)`,
	"invalid-long-interval.yaml":         `4: endpoints[0].interval: 48h is outside 1s-24h`,
	"invalid-no-endpoints.yaml":          `1: no endpoints: list; want at least one endpoint to watch (or an agents: section)`,
	"invalid-port.yaml":                  `3: endpoints[0].target: "127.0.0.1:65536": port out of range 1-65535`,
	"invalid-timeout-over-interval.yaml": `5: endpoints[0].timeout: 5s is longer than the interval 2s; a probe must end before the next one starts`,
	"invalid-unknown-field.yaml":         `4: endpoints[0]: unknown field "intervall" (known: name, target, interval, timeout, labels, expect, latency_threshold, source, interface, depends_on, expect_status, expect_body, ca, sni, warn_days)`,
	"invalid-source.yaml":                `4: endpoints[0].source: got "198.18.0.300"; want an IP address of this host such as 198.18.0.1 or fd00::1`,
	"invalid-source-family.yaml":         `5: endpoints[0].source: ::1 cannot reach the target 127.0.0.1:5432: give an address of the target's family`,
	"invalid-interface.yaml":             `4: endpoints[0].interface: got "eth0:1"; want a network interface name such as eth0 (see ip link)`,
	"invalid-top-level.yaml": `1: unknown field "endpoint" (known: endpoints, defaults, alerts, agents)
testdata/invalid-top-level.yaml:1: no endpoints: list; want at least one endpoint to watch (or an agents: section)`,
	"invalid-webhook.yaml": `2: alerts.webhook: "ftp://127.0.0.1/...": want an http:// or https:// URL with a host
testdata/invalid-webhook.yaml:3: alerts.rise: got "0"; want a whole number from 1 to 100`,
	"invalid-yaml-syntax.yaml": `1: not valid YAML: did not find expected '-' indicator`,
	"invalid-dependency-cycle.yaml": `3: endpoints[1].depends_on: dependencies form a cycle: a → c → b → a; ` +
		`an endpoint cannot need what needs it: remove one of these depends_on`,
	"invalid-dependency-unknown.yaml": `5: endpoints[1].depends_on: "dbb" is not an endpoint of this file ` +
		`(known: db, api); name one of its endpoints`,
	"invalid-window-missing.yaml": `3: alerts.maintenance[0].end: missing; a one-off window needs a start and an end
testdata/invalid-window-missing.yaml:4: alerts.maintenance[1].name: missing; every window needs a name (the dashboard and logs show it)
testdata/invalid-window-missing.yaml:4: alerts.maintenance[1].at: missing; say when each occurrence starts, e.g. at: "02:00"`,
	"invalid-window-zone.yaml": `7: alerts.maintenance[0].zone: "Europe/Berln" is not an IANA time zone; ` +
		`write one such as Europe/Berlin, America/New_York or UTC`,
	"invalid-window.yaml": `4: alerts.maintenance[0].days: "sonntag" is not a day; write mon, tue, wed, thu, fri, sat or sun
testdata/invalid-window.yaml:5: alerts.maintenance[0].at: "25:00": want a wall-clock time HH:MM, 00:00 to 23:59, such as "02:00"
testdata/invalid-window.yaml:9: alerts.maintenance[1].end: 2026-03-29T01:00:00+01:00 is not after the start 2026-03-29T03:00:00+02:00
testdata/invalid-window.yaml:11: alerts.maintenance[2]: a window is one-off (start, end) or recurring (days, at, for), not both
testdata/invalid-window.yaml:14: alerts.maintenance[3].name: "nightly" is already used on line 3; names must be unique
testdata/invalid-window.yaml:15: alerts.maintenance[3].endpoints: "dbb" is not an endpoint of this file (known: db)`,
	"invalid-two-documents.yaml": `4: a second YAML document starts here (---); reach reads one document: ` +
		`move what follows into the first and remove this ---`,
}

func TestInvalidConfigFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(invalidConfigs) {
		t.Errorf("%d fixtures on disk, %d in the table; keep them in step", len(files), len(invalidConfigs))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, ok := invalidConfigs[filepath.Base(f)]
			if !ok {
				t.Fatalf("no expected error for %s", f)
			}
			_, err := LoadConfig(f)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := err.Error(); got != f+":"+want {
				t.Errorf("error:\n got %s\nwant %s", got, f+":"+want)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("errors.Is(err, ErrConfig) = false")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Line == 0 {
				t.Errorf("no *ConfigError with a line in %v", err)
			}
		})
	}
}

func TestTimeoutFromDefaultsOverInterval(t *testing.T) {
	_, err := ParseConfig("reach.yaml", []byte("defaults: {timeout: 5s}\nendpoints:\n  - name: a\n    target: 127.0.0.1:1\n    interval: 2s\n"))
	want := "reach.yaml:3: endpoints[0].timeout: 5s (from defaults.timeout) is longer than the interval 2s; a probe must end before the next one starts"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestParseConfigKeepsAgentsSection(t *testing.T) {
	cfg, err := ParseConfig("", []byte("agents:\n  interval: 10s\n  hosts: [{name: a, addr: 198.18.0.1}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var hub struct {
		Interval time.Duration           `yaml:"interval"`
		Hosts    []struct{ Name string } `yaml:"hosts"`
	}
	if cfg.Agents == nil || len(cfg.Endpoints) != 0 {
		t.Fatalf("got %+v", cfg)
	}
	if err := cfg.Agents.Decode(&hub); err != nil || hub.Interval != 10*time.Second || len(hub.Hosts) != 1 || hub.Hosts[0].Name != "a" {
		t.Errorf("decoded %+v, %v", hub, err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a wrapped os.ErrNotExist", err)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := LoadConfig("../examples/reach.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range cfg.Endpoints {
		a, ok := ep.Target.Addr()
		if ep.Target.Host != "localhost" && (!ok || !a.IsLoopback()) {
			t.Errorf("example endpoint %s targets %s; examples must stay on loopback", ep.Name, ep.Target)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	files = append(files, "../examples/reach.yaml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("fuzz.yaml", data)
		if err != nil {
			if cfg != nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v with config %v, or not an ErrConfig", err, cfg)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		seen := map[string]bool{}
		for _, ep := range cfg.Endpoints {
			if seen[ep.Name] || !endpoint.ValidName(ep.Name) {
				t.Fatalf("bad or duplicate name %q accepted", ep.Name)
			}
			seen[ep.Name] = true
			if ep.Interval < MinInterval || ep.Timeout <= 0 || ep.Timeout > ep.Interval || ep.Target.Port == 0 {
				t.Fatalf("accepted invalid endpoint %+v", ep)
			}
		}
		if len(cfg.Endpoints) == 0 && cfg.Agents == nil || cfg.Alerts.Rise < 1 || cfg.Alerts.Fall < 1 {
			t.Fatalf("accepted %+v", cfg)
		}
		for _, ep := range cfg.Endpoints {
			for _, d := range ep.DependsOn {
				if !seen[d] || d == ep.Name {
					t.Fatalf("%s depends on %q, which is not another endpoint", ep.Name, d)
				}
			}
		}
		for _, w := range cfg.Alerts.Maintenance {
			if w.Recurring() && (w.For < time.Minute || w.For > MaxWindow || w.At < 0 || w.At >= 24*60) ||
				!w.Recurring() && !w.End.After(w.Start) {
				t.Fatalf("accepted window %+v", w)
			}
		}
		// The Alerter takes whatever the parser accepts: a cycle would
		// recurse, a window would be asked about a DST night.
		a := NewAlerter(cfg)
		now := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
		for _, ep := range cfg.Endpoints {
			a.Change(now, Alert{Endpoint: ep.Name, Source: LocalSource, State: StateDown, Time: now})
		}
		a.Tick(now.Add(time.Hour))
	})
}
