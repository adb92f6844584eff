package hub

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
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
//	  matrix:                      # by labels: hosts and agents that registered
//	    rules:
//	      - {from: {role: web}, to: {role: db}, ports: [5432]}
//	      - {from: all, to: all, ports: [7070]}
//	  registration:
//	    stale_after: 30s           # silent this long: stale
//	    alert_after: 2m            # stale this long: alert
//	    max_agents: 1000
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
	// Matrix holds the rules that make probe lists from labels: of the
	// hosts above and of the agents that registered themselves.
	Matrix MatrixConfig `yaml:"matrix"`
	// Registration governs agents that announce themselves.
	Registration RegistrationConfig `yaml:"registration"`
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
	// Labels describe the host to the matrix rules, as an agent that
	// registers describes itself.
	Labels map[string]string `yaml:"labels"`

	registered bool         // announced by its agent, not from the config
	addrs      []netip.Addr // a registered agent's addresses; Addr is the first
}

// MatrixConfig makes probe lists from labels.
type MatrixConfig struct {
	Rules []Rule `yaml:"rules"`
}

// Rule makes every host From selects probe every other host To selects on
// Ports. A host never probes itself.
type Rule struct {
	From  Selector `yaml:"from"`
	To    Selector `yaml:"to"`
	Ports []uint16 `yaml:"ports"`
}

// Selector picks hosts by labels: All, or those carrying every one of
// Labels (key and value). In YAML: "all", or a mapping of labels.
type Selector struct {
	All    bool
	Labels map[string]string
}

// UnmarshalYAML reads "all" (or {all}) or a mapping of label: value.
func (s *Selector) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "all" {
		*s = Selector{All: true}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a selector is all, or labels such as {role: db}", n.Line)
	}
	if len(n.Content) == 2 && n.Content[0].Value == "all" && n.Content[1].Tag == "!!null" {
		*s = Selector{All: true}
		return nil
	}
	if len(n.Content) == 0 {
		return fmt.Errorf("line %d: an empty selector: write all to pick every host", n.Line)
	}
	l := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		v := n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: label %s: want a value such as db", v.Line, n.Content[i].Value)
		}
		l[n.Content[i].Value] = v.Value
	}
	*s = Selector{Labels: l}
	return nil
}

// Matches reports whether labels has every label of s.
func (s Selector) Matches(labels map[string]string) bool {
	if s.All {
		return true
	}
	for k, v := range s.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return len(s.Labels) > 0
}

func (s Selector) String() string {
	if s.All {
		return "all"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		parts = append(parts, k+": "+s.Labels[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// RegistrationConfig governs agents that register. Zero fields are the
// defaults.
type RegistrationConfig struct {
	// StaleAfter is how long a registered agent may stay silent before it
	// is stale: default 3 intervals, at least 6 s (three reports of an
	// agent with nothing to report; agents beat once an interval).
	StaleAfter time.Duration `yaml:"stale_after"`
	// AlertAfter is how long an agent may stay stale before the hub alerts
	// (the webhook, and reach_hub_agent_stale): default 2m.
	AlertAfter time.Duration `yaml:"alert_after"`
	// MaxAgents caps how many agents may register: default 1000.
	MaxAgents int `yaml:"max_agents"`
}

// Registration defaults.
const (
	DefaultAlertAfter = 2 * time.Minute
	DefaultMaxAgents  = 1000
	minStaleAfter     = 6 * time.Second
)

// staleAfter, alertAfter and maxAgents are the settings with defaults.
func (c *Config) staleAfter() time.Duration {
	return cmp.Or(c.Registration.StaleAfter, max(3*cmp.Or(c.Interval, 10*time.Second), minStaleAfter))
}
func (c *Config) alertAfter() time.Duration {
	return cmp.Or(c.Registration.AlertAfter, DefaultAlertAfter)
}
func (c *Config) maxAgents() int { return cmp.Or(c.Registration.MaxAgents, DefaultMaxAgents) }

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
	lists, _, err := c.probeLists(nil)
	return lists, err
}

// probeLists checks c and returns the probe lists of its hosts and of the
// registered agents in extra, and every member of the fleet: the config's
// hosts in order, then the registered agents whose names no host of the
// config takes, in extra's order.
func (c *Config) probeLists(extra []HostConfig) (map[string]agent.ProbeList, []HostConfig, error) {
	interval := cmp.Or(c.Interval, 10*time.Second)
	timeout := cmp.Or(c.Timeout, min(interval, 3*time.Second))
	if interval < 0 || timeout < 0 {
		return nil, nil, configErr("interval and timeout must be positive")
	}
	if timeout > interval {
		return nil, nil, configErr("timeout %v is longer than interval %v", timeout, interval)
	}
	hosts := map[string]HostConfig{}
	lists := map[string]agent.ProbeList{}
	for i, h := range c.Hosts {
		switch {
		case h.Name == "":
			return nil, nil, configErr("hosts[%d]: no name", i)
		case !endpoint.ValidName(h.Name):
			return nil, nil, configErr("hosts[%d]: name %q: want 1-64 letters, digits, '.', '_' or '-', "+
				"starting with a letter or digit (the agent's --name)", i, h.Name)
		case h.Name == monitor.LocalSource:
			return nil, nil, configErr("hosts[%d]: %s", i, reservedName)
		case !h.Addr.IsValid():
			return nil, nil, configErr("host %q: no addr (an IP address; agents resolve no names)", h.Name)
		}
		if _, dup := hosts[h.Name]; dup {
			return nil, nil, configErr("host %q is listed twice", h.Name)
		}
		hosts[h.Name] = h
		lists[h.Name] = agent.ProbeList{Agent: h.Name, Interval: agent.Duration(interval),
			Timeout: agent.Duration(timeout), Targets: []agent.Target{}, Recheck: c.Recheck}
	}
	if err := c.checkMatrix(); err != nil {
		return nil, nil, err
	}
	members := slices.Clone(c.Hosts)
	for _, r := range extra {
		if _, taken := hosts[r.Name]; taken {
			continue // the config's host of that name wins
		}
		hosts[r.Name] = r
		members = append(members, r)
		lists[r.Name] = agent.ProbeList{Agent: r.Name, Interval: agent.Duration(interval),
			Timeout: agent.Duration(timeout), Targets: []agent.Target{}, Recheck: c.Recheck}
	}
	have := map[string]map[string]bool{} // from -> target ids it has
	add := func(from string, t agent.Target) {
		if have[from] == nil {
			have[from] = map[string]bool{}
		}
		if have[from][t.ID] {
			return
		}
		have[from][t.ID] = true
		pl := lists[from]
		pl.Targets = append(pl.Targets, t)
		lists[from] = pl
	}
	for _, g := range c.Groups {
		if len(g.Ports) == 0 {
			return nil, nil, configErr("group %q: no ports", g.Name)
		}
		for _, name := range g.Hosts {
			if _, ok := hosts[name]; !ok {
				return nil, nil, configErr("group %q: host %q is not in hosts", g.Name, name)
			}
		}
		for _, port := range g.Ports {
			if port == 0 {
				return nil, nil, configErr("group %q: port 0", g.Name)
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
			return nil, nil, configErr("pairs[%d]: from %q is not in hosts", i, p.From)
		}
		t, err := pairTarget(hosts, p.To)
		if err != nil {
			return nil, nil, configErr("pairs[%d]: %v", i, err)
		}
		add(p.From, t)
	}
	for _, r := range c.Matrix.Rules {
		var to []HostConfig
		for _, m := range members {
			if r.To.Matches(m.Labels) {
				to = append(to, m)
			}
		}
		for _, from := range members {
			if !r.From.Matches(from.Labels) {
				continue
			}
			for _, m := range to {
				if m.Name == from.Name {
					continue
				}
				for _, port := range r.Ports {
					add(from.Name, hostTarget(m, port))
				}
			}
		}
	}
	for name, pl := range lists {
		slices.SortFunc(pl.Targets, func(a, b agent.Target) int {
			return cmp.Or(cmp.Compare(a.Host, b.Host), a.Addr.Compare(b.Addr), cmp.Compare(a.ID, b.ID))
		})
		pl.Version = listVersion(pl)
		lists[name] = pl
	}
	return lists, members, nil
}

// listVersion names a probe list's content (agent.ProbeList.Version).
func listVersion(pl agent.ProbeList) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d %d %d", pl.Interval, pl.Timeout, pl.Recheck)
	for _, t := range pl.Targets {
		fmt.Fprintf(h, "|%s %s %s", t.ID, t.Host, t.Addr)
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// checkMatrix refuses a rule without ports or with labels no host can
// carry (agent.CheckLabels), and bad labels on hosts.
func (c *Config) checkMatrix() error {
	for _, h := range c.Hosts {
		if err := agent.CheckLabels(h.Labels); err != nil {
			return configErr("host %q: %v", h.Name, err)
		}
	}
	for i, r := range c.Matrix.Rules {
		if len(r.Ports) == 0 || slices.Contains(r.Ports, 0) {
			return configErr("matrix.rules[%d]: want ports, none of them 0, e.g. ports: [5432]", i)
		}
		for _, s := range []Selector{r.From, r.To} {
			if !s.All && len(s.Labels) == 0 {
				return configErr("matrix.rules[%d]: want from: and to:, each all or labels "+
					"such as {role: db}", i)
			}
			if err := agent.CheckLabels(s.Labels); err != nil {
				return configErr("matrix.rules[%d]: %v", i, err)
			}
		}
	}
	if c.Registration.StaleAfter < 0 || c.Registration.AlertAfter < 0 || c.Registration.MaxAgents < 0 {
		return configErr("registration: stale_after, alert_after and max_agents must be positive " +
			"(or left out for the defaults)")
	}
	return nil
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
	"agents": {"token_file", "interval", "timeout", "hosts", "groups", "pairs", "matrix",
		"registration"},
	"hosts":        {"name", "addr", "agent", "labels"},
	"matrix":       {"rules"},
	"rules":        {"from", "to", "ports"},
	"registration": {"stale_after", "alert_after", "max_agents"},
	"groups":       {"name", "hosts", "ports"},
	"pairs":        {"from", "to"},
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
		_, sub := known[k.Value]
		switch {
		case sub && (part == "agents" || part == "matrix") && v.Kind == yaml.SequenceNode:
			for _, item := range v.Content {
				if err := checkKeys(item, k.Value, known); err != nil {
					return err
				}
			}
		case sub && part == "agents" && v.Kind == yaml.MappingNode:
			if err := checkKeys(v, k.Value, known); err != nil {
				return err
			}
		}
	}
	return nil
}
