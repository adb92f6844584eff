package netlab

import (
	"slices"
	"strings"
)

// ruleset builds iptables-save text the way iptables-save prints it: per
// table, the built-in chains with any policy set, the user chains, then the
// rules grouped by chain (built-in chains first, in the kernel's order,
// then user chains in the order declared). Rules written in iptables-save's
// option order therefore come back from iptables-save line for line.
type ruleset struct {
	tables []*iptTable
}

type iptTable struct {
	name     string
	policies map[string]string
	chains   []string            // user chains, in order declared
	rules    map[string][]string // chain -> rule specs (after -A CHAIN)
}

// builtin lists each table's built-in chains in iptables-save's order.
var builtin = map[string][]string{
	"raw":    {"PREROUTING", "OUTPUT"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
}

func (rs *ruleset) table(name string) *iptTable {
	for _, t := range rs.tables {
		if t.name == name {
			return t
		}
	}
	t := &iptTable{name: name, policies: map[string]string{}, rules: map[string][]string{}}
	rs.tables = append(rs.tables, t)
	return t
}

// chain declares user chains (once each).
func (t *iptTable) chain(names ...string) {
	for _, n := range names {
		if !slices.Contains(t.chains, n) {
			t.chains = append(t.chains, n)
		}
	}
}

// policy sets a built-in chain's policy.
func (t *iptTable) policy(chain, verdict string) { t.policies[chain] = verdict }

// add appends a rule: spec is what follows "-A CHAIN ".
func (t *iptTable) add(chain, spec string) {
	t.rules[chain] = append(t.rules[chain], spec)
}

// insert puts a rule at the head of chain, as iptables -I does.
func (t *iptTable) insert(chain, spec string) {
	t.rules[chain] = append([]string{spec}, t.rules[chain]...)
}

func (rs *ruleset) String() string {
	var b strings.Builder
	for _, t := range rs.tables {
		b.WriteString("*" + t.name + "\n")
		for _, c := range builtin[t.name] {
			if p, ok := t.policies[c]; ok {
				b.WriteString(":" + c + " " + p + " [0:0]\n")
			}
		}
		for _, c := range t.chains {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, c := range append(slices.Clone(builtin[t.name]), t.chains...) {
			for _, r := range t.rules[c] {
				b.WriteString("-A " + c + " " + r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
