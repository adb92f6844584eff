package hub

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/monitor"
)

// Config says which agent probes what: the agents: section of the hub's
// reach.yaml. Agents get only the targets it allows.
//
//	agents:
//	  token_file: /etc/reach/agent-token
//	  interval: 10s
//	  timeout: 3s
//	  hosts:
//	    - {name: web-1, addr: 198.18.0.1}
//	    - {name: db-1, addr: 198.18.0.2, agent: "https://198.18.0.2:7070"}
//	  groups:                      # every member probes every other member
//	    - {name: web, hosts: [web-1, db-1], ports: [22, 5432]}
//	  pairs:                       # one agent, one target
//	    - {from: web-1, to: "db-1:6379"}
//	    - {from: web-1, to: "198.18.0.9:443"}
type Config struct {
	// Token is the shared bearer token; TokenFile is read when it is empty.
	Token     string `yaml:"-"`
	TokenFile string `yaml:"token_file"`
	// Interval is how often each agent probes each of its targets: default
	// 10s, at least agent.MinInterval (1s) in a config file. Timeout is
	// each probe's: default 3s, at most Interval, at least agent.MinTimeout
	// (1ms). Agents raise shorter ones to those floors, whatever the hub
	// sends.
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Hosts    []HostConfig  `yaml:"hosts"`
	Groups   []GroupConfig `yaml:"groups"`
	Pairs    []PairConfig  `yaml:"pairs"`
	// Recheck is how often agents probe a pair again at once after a
	// network change (agent.ProbeList.Recheck); reach watch sets it to the
	// larger of its rise and fall. 0: agent.DefaultRecheck.
	Recheck int `yaml:"-"`
}

// HostConfig is one host of the fleet; its name is its agent's name.
type HostConfig struct {
	Name string     `yaml:"name"`
	Addr netip.Addr `yaml:"addr"`
	// Agent is the base URL of the host's agent, for the doctor's
	// server-side questions. Optional: agents advertise their own (on this
	// address only).
	Agent string `yaml:"agent"`
}

// GroupConfig is a full mesh: every host in it probes every other on Ports.
type GroupConfig struct {
	Name  string   `yaml:"name"`
	Hosts []string `yaml:"hosts"`
	Ports []uint16 `yaml:"ports"`
}

// PairConfig is one explicit probe: agent From probes To, which is
// "host:port" with a host from Hosts, or "ip:port".
type PairConfig struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// ErrConfig marks an invalid hub configuration.
var ErrConfig = errors.New("hub: invalid config")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// ProbeLists checks c and returns each agent's probe list, by name.
func (c *Config) ProbeLists() (map[string]agent.ProbeList, error) {
	interval := cmp.Or(c.Interval, 10*time.Second)
	timeout := cmp.Or(c.Timeout, min(interval, 3*time.Second))
	if interval < 0 || timeout < 0 {
		return nil, configErr("interval and timeout must be positive")
	}
	if timeout > interval {
		return nil, configErr("timeout %v is longer than interval %v", timeout, interval)
	}
	hosts := map[string]HostConfig{}
	lists := map[string]agent.ProbeList{}
	for i, h := range c.Hosts {
		switch {
		case h.Name == "":
			return nil, configErr("hosts[%d]: no name", i)
		case !endpoint.ValidName(h.Name):
			return nil, configErr("hosts[%d]: name %q: want 1-64 letters, digits, '.', '_' or '-', "+
				"starting with a letter or digit (the agent's --name)", i, h.Name)
		case h.Name == monitor.LocalSource:
			return nil, configErr("hosts[%d]: %s", i, reservedName)
		case !h.Addr.IsValid():
			return nil, configErr("host %q: no addr (an IP address; agents resolve no names)", h.Name)
		}
		if _, dup := hosts[h.Name]; dup {
			return nil, configErr("host %q is listed twice", h.Name)
		}
		hosts[h.Name] = h
		lists[h.Name] = agent.ProbeList{Agent: h.Name, Interval: agent.Duration(interval),
			Timeout: agent.Duration(timeout), Targets: []agent.Target{}, Recheck: c.Recheck}
	}
	add := func(from string, t agent.Target) {
		pl := lists[from]
		if !slices.ContainsFunc(pl.Targets, func(o agent.Target) bool { return o.ID == t.ID }) {
			pl.Targets = append(pl.Targets, t)
		}
		lists[from] = pl
	}
	for _, g := range c.Groups {
		if len(g.Ports) == 0 {
			return nil, configErr("group %q: no ports", g.Name)
		}
		for _, name := range g.Hosts {
			if _, ok := hosts[name]; !ok {
				return nil, configErr("group %q: host %q is not in hosts", g.Name, name)
			}
		}
		for _, port := range g.Ports {
			if port == 0 {
				return nil, configErr("group %q: port 0", g.Name)
			}
			for _, from := range g.Hosts {
				for _, to := range g.Hosts {
					if from != to {
						add(from, hostTarget(hosts[to], port))
					}
				}
			}
		}
	}
	for i, p := range c.Pairs {
		if _, ok := hosts[p.From]; !ok {
			return nil, configErr("pairs[%d]: from %q is not in hosts", i, p.From)
		}
		t, err := pairTarget(hosts, p.To)
		if err != nil {
			return nil, configErr("pairs[%d]: %v", i, err)
		}
		add(p.From, t)
	}
	for name, pl := range lists {
		slices.SortFunc(pl.Targets, func(a, b agent.Target) int {
			return cmp.Or(cmp.Compare(a.Host, b.Host), a.Addr.Compare(b.Addr), cmp.Compare(a.ID, b.ID))
		})
		lists[name] = pl
	}
	return lists, nil
}

// reservedName explains why no host may be named monitor.LocalSource: the
// monitor keeps the hub's own probes under that source, and results an
// agent of that name sent were taken for them and dropped.
var reservedName = fmt.Sprintf("name %q is reserved for what this hub probes itself "+
	"(the endpoints: list); name the host otherwise, and its agent's --name the same", monitor.LocalSource)

// Warnings lists the probes agents will refuse unless their operators allow
// them (agent.Forbidden: link-local, unspecified, broadcast, multicast):
// such a config is valid, but those pairs will show as refused.
func (c *Config) Warnings() []string {
	lists, err := c.ProbeLists()
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(lists)) {
		for _, t := range lists[name].Targets {
			kind := agent.Forbidden(t.Addr.Addr())
			if kind == "" {
				continue
			}
			a := t.Addr.Addr().Unmap()
			out = append(out, fmt.Sprintf("%s → %s: %s is %s: agent %s will refuse to probe it "+
				"(and report it refused) unless started with --allow-targets %s", name, t.ID, t.Addr, kind,
				name, netip.PrefixFrom(a, a.BitLen())))
		}
	}
	return out
}

func hostTarget(h HostConfig, port uint16) agent.Target {
	id := h.Name + ":" + strconv.Itoa(int(port))
	return agent.Target{ID: id, Host: h.Name, Addr: netip.AddrPortFrom(h.Addr, port)}
}

func pairTarget(hosts map[string]HostConfig, to string) (agent.Target, error) {
	ep, err := endpoint.ParseEndpoint(to, 0)
	if err != nil {
		return agent.Target{}, fmt.Errorf("to: %w", err)
	}
	if h, ok := hosts[ep.Host]; ok {
		return hostTarget(h, ep.Port), nil
	}
	ap, ok := ep.AddrPort()
	if !ok {
		return agent.Target{}, fmt.Errorf("to %q: %q is neither a host in hosts nor an IP address "+
			"(agents resolve no names)", to, ep.Host)
	}
	return agent.Target{ID: ap.String(), Addr: ap}, nil
}

// ParseConfig decodes an agents: section (as kept by the monitor's config
// loader) and checks it, refusing unknown fields with their line so a typo
// never silently drops a host.
func ParseConfig(n *yaml.Node) (Config, error) {
	var c Config
	if err := checkKeys(n, "agents", hubKeys); err != nil {
		return c, err
	}
	// A bad addr fails without a line number: decode each host alone to
	// name its line.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "hosts" {
			continue
		}
		for j, item := range n.Content[i+1].Content {
			var h HostConfig
			if err := item.Decode(&h); err != nil {
				return c, configErr("line %d: hosts[%d]: %v (addr wants an IP address)", item.Line, j, err)
			}
			if h.Name == monitor.LocalSource {
				return c, configErr("line %d: hosts[%d]: %s", item.Line, j, reservedName)
			}
		}
	}
	if err := n.Decode(&c); err != nil {
		return c, configErr("%v", err)
	}
	if err := checkFloors(n, c); err != nil {
		return c, err
	}
	if _, err := c.ProbeLists(); err != nil {
		return c, err
	}
	return c, nil
}

// checkFloors refuses an interval or timeout below what agents accept
// (agent.MinInterval, agent.MinTimeout), naming its line: an agent would
// raise it to the floor anyway, and a hub config that asks for 1ns must not
// read as valid.
func checkFloors(n *yaml.Node, c Config) error {
	for _, f := range []struct {
		key      string
		v, floor time.Duration
		why      string
	}{
		{"interval", c.Interval, agent.MinInterval, "each agent probes every target of its list once per interval"},
		{"timeout", c.Timeout, agent.MinTimeout, "a probe needs time to connect"},
	} {
		if f.v == 0 || f.v >= f.floor {
			continue
		}
		line := 0
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == f.key {
				line = n.Content[i+1].Line
			}
		}
		return configErr("line %d: agents.%s %v is below the floor of %v (%s; agents raise a shorter "+
			"one to the floor): write %s: %v or longer", line, f.key, f.v, f.floor, f.why, f.key, f.floor)
	}
	return nil
}

// FromMonitorConfig returns the agents: section of a reach.yaml (cfg.Agents),
// checked, with its token read from token_file; nil when there is none. The
// section must name a token_file: agents and hub share a bearer token.
func FromMonitorConfig(cfg *monitor.Config) (*Config, error) {
	if cfg.Agents == nil {
		return nil, nil
	}
	c, err := ParseConfig(cfg.Agents)
	if err != nil {
		return nil, err
	}
	if c.TokenFile == "" {
		return nil, fmt.Errorf("%w: agents: no token_file: agents and hub share a bearer token; "+
			"create one (openssl rand -hex 32 > /etc/reach/agent-token) "+
			"and set agents.token_file to it", ErrConfig)
	}
	if c.Token, err = agent.ReadToken(c.TokenFile); err != nil {
		return nil, fmt.Errorf("agents.token_file: %w", err)
	}
	c.Recheck = min(max(cmp.Or(cfg.Alerts.Rise, monitor.DefaultRise), cmp.Or(cfg.Alerts.Fall,
		monitor.DefaultFall)), agent.MaxRecheck)
	return &c, nil
}

// hubKeys lists the known fields of each part of the agents: section.
var hubKeys = map[string][]string{
	"agents": {"token_file", "interval", "timeout", "hosts", "groups", "pairs"},
	"hosts":  {"name", "addr", "agent"},
	"groups": {"name", "hosts", "ports"},
	"pairs":  {"from", "to"},
}

// checkKeys refuses unknown keys in the mapping n (of kind part) and in the
// items of its hosts, groups and pairs lists.
func checkKeys(n *yaml.Node, part string, known map[string][]string) error {
	if n.Kind != yaml.MappingNode {
		return configErr("line %d: %s: want a mapping (key: value lines)", n.Line, part)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known[part], k.Value) {
			return configErr("line %d: %s: unknown field %q (known: %s)",
				k.Line, part, k.Value, strings.Join(known[part], ", "))
		}
		if _, list := known[k.Value]; list && part == "agents" && v.Kind == yaml.SequenceNode {
			for _, item := range v.Content {
				if err := checkKeys(item, k.Value, known); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
