package hub

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/reach-tools/reach/agent"
)

func parseConfig(t testing.TB, src string) (Config, error) {
	t.Helper()
	var c Config
	err := yaml.Unmarshal([]byte(src), &c)
	return c, err
}

func TestConfigProbeLists(t *testing.T) {
	c, err := parseConfig(t, `
interval: 5s
hosts:
  - {name: web-1, addr: 198.18.0.1}
  - {name: web-2, addr: 198.18.0.2}
  - {name: db, addr: 198.18.0.3, agent: "http://198.18.0.3:7070"}
groups:
  - {name: all, hosts: [web-1, web-2, db], ports: [22]}
  - {name: db, hosts: [web-1, db], ports: [5432]}
pairs:
  - {from: web-2, to: "db:5432"}
  - {from: web-2, to: "198.18.0.9:443"}
  - {from: web-2, to: "db:22"}   # already in group all: once only
`)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := c.ProbeLists()
	if err != nil {
		t.Fatal(err)
	}
	ids := func(name string) string {
		var s []string
		for _, t := range lists[name].Targets {
			s = append(s, t.ID+"="+t.Addr.String())
		}
		return strings.Join(s, " ")
	}
	for name, want := range map[string]string{
		"web-1": "db:22=198.18.0.3:22 db:5432=198.18.0.3:5432 web-2:22=198.18.0.2:22",
		"web-2": "198.18.0.9:443=198.18.0.9:443 db:22=198.18.0.3:22 db:5432=198.18.0.3:5432 web-1:22=198.18.0.1:22",
		"db":    "web-1:22=198.18.0.1:22 web-1:5432=198.18.0.1:5432 web-2:22=198.18.0.2:22",
	} {
		if got := ids(name); got != want {
			t.Errorf("%s probes\n  %s\nwant\n  %s", name, got, want)
		}
	}
	if pl := lists["db"]; pl.Interval != agent.Duration(5*time.Second) || pl.Timeout != agent.Duration(3*time.Second) {
		t.Errorf("interval %v timeout %v, want 5s and the 3s default", pl.Interval, pl.Timeout)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"hosts: [{addr: 198.18.0.1}]", "no name"},
		{"hosts: [{name: a}]", `host "a": no addr`},
		{"hosts: [{name: a, addr: 198.18.0.1}, {name: a, addr: 198.18.0.2}]", "listed twice"},
		{"hosts: [{name: a, addr: 198.18.0.1}]\ngroups: [{name: g, hosts: [a, b], ports: [1]}]", `host "b" is not in hosts`},
		{"hosts: [{name: a, addr: 198.18.0.1}]\ngroups: [{name: g, hosts: [a]}]", "no ports"},
		{"hosts: [{name: a, addr: 198.18.0.1}]\npairs: [{from: b, to: a:1}]", `from "b" is not in hosts`},
		{"hosts: [{name: a, addr: 198.18.0.1}]\npairs: [{from: a, to: db.example:1}]", "neither a host in hosts nor an IP address"},
		{"hosts: [{name: a, addr: 198.18.0.1}]\npairs: [{from: a, to: a}]", "missing port"},
		{"interval: 1s\ntimeout: 2s", "longer than interval"},
	} {
		c, err := parseConfig(t, tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		_, err = c.ProbeLists()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n  got %v\n  want ErrConfig containing %q", tc.src, err, tc.want)
		}
	}
}

// FuzzConfig feeds arbitrary agents: sections to the config checker: it
// must never panic, and every list it accepts names only configured sources.
func FuzzConfig(f *testing.F) {
	f.Add("hosts: [{name: a, addr: 198.18.0.1}, {name: b, addr: 198.18.0.2}]\ngroups: [{name: g, hosts: [a, b], ports: [22, 80]}]")
	f.Add("hosts: [{name: a, addr: '::1'}]\npairs: [{from: a, to: '[::1]:22'}, {from: a, to: 'a:1'}]")
	f.Add("interval: 1s\ntimeout: 1s\nhosts: []")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := parseConfig(t, src)
		if err != nil {
			return
		}
		lists, err := c.ProbeLists()
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		for name, pl := range lists {
			if pl.Interval <= 0 || pl.Timeout <= 0 || pl.Timeout > pl.Interval {
				t.Fatalf("%s: interval %v timeout %v", name, pl.Interval, pl.Timeout)
			}
			for _, tg := range pl.Targets {
				if !tg.Addr.IsValid() || tg.Addr.Port() == 0 {
					t.Fatalf("%s: target %+v has no address", name, tg)
				}
			}
		}
	})
}

func TestParseConfigRefusesUnknownFields(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"agents:\n  hosts: [{name: a, addr: 198.18.0.1}]\n  intervall: 5s\n", `line 3: agents: unknown field "intervall"`},
		{"agents:\n  hosts:\n    - {name: a, adr: 198.18.0.1}\n", `line 3: hosts: unknown field "adr"`},
		{"agents:\n  pairs:\n    - {from: a, target: b:1}\n", `line 3: pairs: unknown field "target"`},
		{"agents: [a]\n", "line 1: agents: want a mapping"},
		{"agents:\n  hosts: [{name: a, addr: nope}]\n", "ParseAddr"},
		{"agents:\n  hosts: [{name: \"a<b>\", addr: 198.18.0.1}]\n", `hosts[0]: name "a<b>": want 1-64 letters`},
		{"agents:\n  hosts:\n    - {name: a, addr: 198.18.0.1}\n    - {name: b, addr: nope}\n", `line 4: hosts[1]: ParseAddr("nope")`},
		{"agents:\n  hosts: [{name: a, addr: 198.18.0.1}]\n  groups: [{name: g, hosts: [a, b], ports: [1]}]\n", `host "b" is not in hosts`},
	} {
		var doc struct {
			Agents yaml.Node `yaml:"agents"`
		}
		if err := yaml.Unmarshal([]byte(tc.src), &doc); err != nil {
			t.Fatal(err)
		}
		_, err := ParseConfig(&doc.Agents)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n  got %v\n  want ErrConfig containing %q", tc.src, err, tc.want)
		}
	}
	var doc struct {
		Agents yaml.Node `yaml:"agents"`
	}
	yaml.Unmarshal([]byte("agents:\n  interval: 5s\n  hosts: [{name: a, addr: 198.18.0.1}]\n"), &doc)
	if c, err := ParseConfig(&doc.Agents); err != nil || c.Interval != 5*time.Second {
		t.Errorf("valid section: %+v, %v", c, err)
	}
}

// An interval or timeout below the agents' floors is invalid, with its line
// and what to write instead; at the floor it is valid. (An interval of 1ns
// was valid, and one agent sent 270,000 samples in 6 s.)
func TestHostileConfigFloors(t *testing.T) {
	hosts := "  hosts: [{name: a, addr: 198.18.0.1}]\n"
	for _, tc := range []struct{ src, want string }{
		{"agents:\n" + hosts + "  interval: 1ns\n", "line 3: agents.interval 1ns is below the floor of 1s " +
			"(each agent probes every target of its list once per interval; agents raise a shorter one to the floor): " +
			"write interval: 1s or longer"},
		{"agents:\n" + hosts + "  interval: 999ms\n  timeout: 500ms\n", "line 3: agents.interval 999ms is below the floor of 1s"},
		{"agents:\n" + hosts + "  interval: 5s\n  timeout: 1ns\n", "line 4: agents.timeout 1ns is below the floor of 1ms " +
			"(a probe needs time to connect; agents raise a shorter one to the floor): write timeout: 1ms or longer"},
		{"agents:\n" + hosts + "  interval: 1s\n  timeout: 1ms\n", ""},
	} {
		var doc struct {
			Agents yaml.Node `yaml:"agents"`
		}
		if err := yaml.Unmarshal([]byte(tc.src), &doc); err != nil {
			t.Fatal(err)
		}
		_, err := ParseConfig(&doc.Agents)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v, want valid", tc.src, err)
			}
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n  got %v\n  want ErrConfig containing %q", tc.src, err, tc.want)
		}
	}
}

// Pairs to addresses agents refuse are valid, with a warning each that
// names the pair, the kind and how to allow it; fleet addresses get none.
func TestHostileConfigWarnsOfRefusedTargets(t *testing.T) {
	c, err := parseConfig(t, `
hosts: [{name: a, addr: 198.18.0.1}, {name: b, addr: 198.18.0.2}]
groups: [{name: g, hosts: [a, b], ports: [22]}]
pairs:
  - {from: a, to: "169.254.169.254:80"}
  - {from: a, to: "0.0.0.0:22"}
  - {from: b, to: "255.255.255.255:1"}
  - {from: b, to: "224.0.0.1:80"}
  - {from: b, to: "[fe80::1]:80"}
`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ProbeLists(); err != nil {
		t.Fatalf("want valid: %v", err)
	}
	want := []string{
		"a → 0.0.0.0:22: 0.0.0.0:22 is unspecified: agent a will refuse to probe it (and report it refused) unless started with --allow-targets 0.0.0.0/32",
		"a → 169.254.169.254:80: 169.254.169.254:80 is link-local: agent a will refuse to probe it (and report it refused) unless started with --allow-targets 169.254.169.254/32",
		"b → 224.0.0.1:80: 224.0.0.1:80 is multicast",
		"b → 255.255.255.255:1: 255.255.255.255:1 is broadcast",
		"b → [fe80::1]:80: [fe80::1]:80 is link-local: agent b will refuse to probe it (and report it refused) unless started with --allow-targets fe80::1/128",
	}
	got := c.Warnings()
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n  %s\nwant\n  %s", i, got[i], want[i])
		}
	}
}
