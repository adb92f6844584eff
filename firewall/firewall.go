// Package firewall reads a host's netfilter rules and says which of them
// decide a TCP connection. It reads every table — filter, nat, mangle, raw,
// as iptables-save / ip6tables-save and `nft -j list ruleset` print them —
// into one model: a Ruleset of Tables of Chains of Rules, each rule with its
// match conditions and its target (a verdict, a jump, a return, or a
// translation such as DNAT or REDIRECT), its text and its comment.
//
// Evaluate compares a connection's first packet with the rules of the
// hooks it passes and returns the rules that accept, drop or reject it,
// with the conditions it could not check. Walk follows that packet through
// every chain as the kernel does — jumps, returns, verdict maps, random
// splits, DNAT and REDIRECT, then the filter chains the translated packet
// meets — and returns every place it may end up, with the path to each.
// Neither diagnoses: the doctor and the agent turn their answers into
// findings.
package firewall

import (
	"net/netip"
	"strconv"
	"strings"
)

// The tools rules are read with, as Rule.Source and Table.Source name them.
const (
	Iptables = "iptables"
	Nftables = "nftables"
)

// Ruleset is every table read from a host, in the order read.
type Ruleset struct {
	Tables []Table
	// Notes say what could not be read, and why (a tool missing, a table
	// that failed to parse), when the rest could.
	Notes []string
}

// Table is one netfilter table.
type Table struct {
	Source string // Iptables or Nftables
	// Family is "ip" or "ip6" for iptables-save and ip6tables-save; for
	// nftables, the table's family: "ip", "ip6", "inet", "arp", "bridge"
	// or "netdev".
	Family string
	Name   string // "filter", "nat", "mangle", ... for iptables; any name in nftables
	Chains []Chain
	// Sets are the table's named nftables sets and maps (verdict maps
	// among them), which rules look up with @NAME.
	Sets []Set
	// index maps a chain's name to its place in Chains. Parsers keep it;
	// a Table built otherwise has none, and Chain searches.
	index map[string]int
}

// Label names the table as Rule.Table does: "filter" for iptables, "inet
// filter" (family and name) for nftables.
func (t *Table) Label() string {
	if t.Source == Nftables {
		return t.Family + " " + t.Name
	}
	return t.Name
}

// Chain returns the chain called name, or nil.
func (t *Table) Chain(name string) *Chain {
	if t.index != nil && len(t.index) == len(t.Chains) { // else chains were added by hand
		if i, ok := t.index[name]; ok && t.Chains[i].Name == name {
			return &t.Chains[i]
		} else if !ok {
			return nil
		}
	}
	for i := range t.Chains {
		if t.Chains[i].Name == name {
			return &t.Chains[i]
		}
	}
	return nil
}

// chain returns the chain called name, adding it when the table has none.
// A kube-proxy table has tens of thousands of chains: the index keeps
// parsing linear.
func (t *Table) chain(name string) *Chain {
	if c := t.Chain(name); c != nil {
		return c
	}
	if t.index == nil {
		t.index = map[string]int{}
	}
	t.index[name] = len(t.Chains)
	t.Chains = append(t.Chains, Chain{Name: name})
	return &t.Chains[len(t.Chains)-1]
}

// Set returns the set or map called name, or nil.
func (t *Table) Set(name string) *Set {
	for i := range t.Sets {
		if t.Sets[i].Name == name {
			return &t.Sets[i]
		}
	}
	return nil
}

// Chain is a list of rules. A base chain is attached to a hook, where
// packets enter it; the others are entered only by a jump or goto.
type Chain struct {
	Name string
	// Hook is "prerouting", "input", "forward", "output" or "postrouting"
	// (nftables also has "ingress"), or "" when the chain is reached only
	// by jump or goto.
	Hook string
	// Type is what a base chain may do: "filter", "nat" or "route". For
	// iptables it follows from the table, as iptables-nft declares it.
	Type string
	// Priority orders the base chains of one hook, lowest first (the
	// kernel's NF_IP_PRI_* for iptables tables: raw -300, mangle -150,
	// nat -100 before routing and 100 after, filter 0, security 50).
	Priority int
	// Policy is what a base chain does with a packet no rule decided:
	// "accept" or "drop"; "" for other chains.
	Policy string
	Rules  []Rule
}

// policy returns c's policy as a Rule (with Policy set and the text the
// tool would print), false when c has none.
func (t *Table) policy(c *Chain) (Rule, bool) {
	if c.Policy == "" {
		return Rule{}, false
	}
	r := Rule{Source: t.Source, Table: t.Label(), Chain: c.Name, Hook: c.Hook, Verdict: c.Policy,
		Policy: true, conds: conds{family: t.evalFamily()}}
	if t.Source == Iptables {
		r.Text = "-P " + c.Name + " " + strings.ToUpper(c.Policy)
	} else {
		r.Text = "chain " + c.Name + " { type " + c.Type + " hook " + c.Hook + " priority " +
			strconv.Itoa(c.Priority) + "; policy " + c.Policy + "; }"
	}
	return r, true
}

// evalFamily is the address family the table's rules apply to: "ip",
// "ip6", "inet", or "" for both (bridge, netdev and arp tables are not
// told apart by address family here).
func (t *Table) evalFamily() string {
	switch t.Family {
	case "ip", "ip6", "inet":
		return t.Family
	}
	return ""
}

// Rules lists every rule of every table, chain by chain, each tool's
// rules followed by its chains' policies (as Rules with Policy set): the
// list Evaluate takes.
func (rs *Ruleset) Rules() []Rule {
	if rs == nil {
		return nil
	}
	var out, policies []Rule
	for ti := range rs.Tables {
		t := &rs.Tables[ti]
		for ci := range t.Chains {
			c := &t.Chains[ci]
			out = append(out, c.Rules...)
			if p, ok := t.policy(c); ok {
				policies = append(policies, p)
			}
		}
		if ti+1 == len(rs.Tables) || !sameTool(t, &rs.Tables[ti+1]) {
			out, policies = append(out, policies...), nil
		}
	}
	return out
}

// sameTool reports whether a and b come from one tool's output:
// iptables-save, ip6tables-save or nft.
func sameTool(a, b *Table) bool {
	return a.Source == b.Source && (a.Source == Nftables || a.Family == b.Family)
}

// Table returns the table with the given label (see Table.Label), or nil.
func (rs *Ruleset) Table(label string) *Table {
	for i := range rs.Tables {
		if rs.Tables[i].Label() == label {
			return &rs.Tables[i]
		}
	}
	return nil
}

// Rule is one rule of a chain, or a chain's policy (Policy set): where it
// is, what it does, its text, and its match conditions, which stay inside
// the package (Evaluate reads them).
//
// Rules cross the wire as JSON (an agent's evidence) without their match
// conditions: a rule decoded from JSON matches every packet of its hook.
// Send only rules already known to match (see Evaluate).
type Rule struct {
	Source string `json:"source"` // Iptables or Nftables
	Table  string `json:"table"`  // as Table.Label: "filter", "inet filter"
	Chain  string `json:"chain"`
	// Hook is the hook of the rule's chain; empty for a chain reached by jump.
	Hook string `json:"hook,omitempty"`
	// Hooks are, for a chain reached by jump, the hooks of the base chains
	// that reach it through jumps, gotos and verdict maps (see
	// Table.resolveHooks): empty when none does, nil when not known (a
	// rule built by hand, or from an agent that predates them), and then
	// it may be reached from any hook. JSON keeps the difference ([] and
	// null), so an agent's rules are judged as the host's own are.
	Hooks []string `json:"hooks"`
	Text  string   `json:"text"` // the rule as its tool prints it
	// Verdict is what the rule does with a packet it matches: "accept",
	// "drop", "reject", "return", "jump" or "goto" (to JumpTo), a
	// translation ("dnat", "snat", "masquerade", "redirect", to To),
	// "vmap" (an nft verdict map decides), the lower-case name of another
	// target ("log", "mark", ...), or "" when it has none (it only counts).
	Verdict    string `json:"verdict"`
	RejectWith string `json:"reject_with,omitempty"`
	// JumpTo is the chain a jump or goto continues in.
	JumpTo string `json:"jump_to,omitempty"`
	// To is where a translation sends the packet, as the tool writes it:
	// an address with an optional port ("198.19.0.2:80", "[fd00::2]:80")
	// for dnat and snat, the ports ("443", "1024-2048") for redirect and
	// masquerade; empty when the rule names none.
	To string `json:"to,omitempty"`
	// Comment is the rule's comment (iptables -m comment, nft comment).
	Comment string `json:"comment,omitempty"`
	Policy  bool   `json:"policy,omitempty"` // the chain's default policy, not a rule
	conds
	action
}

// conds are a rule's match conditions. A rule matches a packet when every
// condition holds.
type conds struct {
	family   string // "ip", "ip6", "inet" or "" (both)
	proto    string // "tcp", "udp", ... or "" (any)
	ports    []portRange
	notPorts []portRange // "! --dport": the port must be outside these
	dst      []netip.Prefix
	src      []netip.Prefix
	ifaces   []ifaceCond
	// other are the conditions Evaluate does not check (ct state, marks,
	// address types, ...), as written; Walk decides those it knows.
	other []cond
}

// cond is one condition of conds.other: its text, and how Walk decides it
// (nil: Walk does not know it, and the rule may match).
type cond struct {
	text string
	m    matcher
}

// texts returns the conditions as written.
func texts(cs []cond) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.text
	}
	return out
}

// action is what Walk needs of a rule's target beyond Verdict, JumpTo and
// To: those parsed.
type action struct {
	// target is the target as written when it names no chain ("LOG",
	// "KUBE-SVC-X" when the table lacks that chain).
	target string
	nat    *natTo  // dnat, snat, redirect, masquerade: where to; nil if not understood
	mark   *markOp // a target or statement that sets the packet's mark
	vmap   *vmap   // Verdict "vmap": the key and the map
	// next are the chains the rule may continue in (a jump's, a goto's,
	// a verdict map's), "" for any; set by Table.resolveHooks.
	next []string
}

type portRange struct{ lo, hi uint16 }
