package firewall

import (
	"net/netip"
	"slices"
)

// Packet is the connection attempt a rule is compared against: a TCP SYN
// from Src to Dst, passing the hooks of Direction ("in" or "out").
type Packet struct {
	Direction string
	Src, Dst  netip.AddrPort
	// In and Out name the interfaces the packet arrives on and leaves by,
	// "" when unknown (rules matching on them then stay unchecked).
	In, Out string
}

// Hit says how a rule applies to a packet: Exact when every condition was
// checked, otherwise the rule may apply depending on Unchecked conditions.
type Hit struct {
	Rule      Rule     `json:"rule"`
	Exact     bool     `json:"exact"`
	Unchecked []string `json:"unchecked,omitempty"`
}

// Evaluate walks the chains that p passes, in order, and returns the rules
// that decide its fate: per chain, the first exact match with a verdict of
// accept, drop or reject (or the chain's policy when no rule decides and it
// is not accept), preceded by drop or reject rules that may match but have
// conditions it could not check. Chains reached only by jump count when no
// base chain of their table decided, and only for p's direction when a
// base chain of its hooks reaches them (Rule.Hooks). A TCP flags match is
// checked against the SYN; other matches it does not know leave a rule
// one that may match. rules is a list as Ruleset.Rules makes it.
func Evaluate(rules []Rule, p Packet) []Hit {
	reached, jumpedTo := reach(rules, p)
	decided := map[chainKey]bool{}
	tableDecided := map[[2]string]bool{}
	var out []Hit
	for pass := range 2 {
		for _, r := range rules {
			if (pass == 0) != (r.Hook != "") {
				continue
			}
			k := chainKey{r.Source, r.Table, r.Chain}
			if decided[k] || (pass == 1 && tableDecided[[2]string{r.Source, r.Table}]) || !r.matches(p) {
				continue
			}
			other, ok := r.unchecked(p)
			if !ok {
				continue
			}
			if pass == 1 && jumpedTo[k] {
				how := reached[k]
				if how == nil {
					continue // no jump that p may take leads here
				}
				if len(how.conds) > 0 {
					other = append(slices.Clip(how.conds), other...)
				}
			}
			if r.Policy {
				if r.Verdict != "accept" {
					out = append(out, Hit{Rule: r, Exact: true})
				}
				decided[k] = true
				continue
			}
			switch r.Verdict {
			case "accept", "drop", "reject":
			default:
				continue
			}
			if len(other) > 0 {
				if r.Verdict != "accept" {
					out = append(out, Hit{Rule: r, Unchecked: other})
				}
				continue
			}
			out = append(out, Hit{Rule: r, Exact: true})
			decided[k] = true
			tableDecided[[2]string{r.Source, r.Table}] = true
		}
	}
	return out
}

type chainKey struct{ source, table, chain string }

// path is how a packet may reach a chain: by jumps whose conditions all
// hold (conds empty), or only if conds hold (those of the jumps).
type path struct{ conds []string }

// reach follows the jumps, gotos and verdict maps among rules from the
// base chains p passes: reached holds the chains p may reach and how;
// jumpedTo the chains some rule of the list leads to. A chain none leads
// to (rules an agent sent, which hold only those that match) is judged
// by its Rule.Hooks alone.
func reach(rules []Rule, p Packet) (reached map[chainKey]*path, jumpedTo map[chainKey]bool) {
	type edge struct {
		from, to chainKey
		base     bool     // from a base chain p passes
		conds    []string // the rule's conditions p leaves open
	}
	var edges []edge
	jumpedTo = map[chainKey]bool{}
	anyChain := map[[2]string]bool{}
	for _, r := range rules {
		if len(r.next) == 0 {
			continue
		}
		from := chainKey{r.Source, r.Table, r.Chain}
		var conds []string
		ok := r.matches(p)
		if ok {
			conds, ok = r.unchecked(p)
		}
		if ok && r.Verdict == "vmap" {
			conds = append(conds, r.Text) // which element the key finds
		}
		for _, to := range r.next {
			if to == "" { // a map not read: any chain of the table
				continue
			}
			k := chainKey{r.Source, r.Table, to}
			jumpedTo[k] = true
			if ok {
				edges = append(edges, edge{from: from, to: k, base: r.Hook != "", conds: conds})
			}
		}
		if slices.Contains(r.next, "") {
			anyChain[[2]string{r.Source, r.Table}] = true
		}
	}
	// A map not read may lead to any chain of its table, and how is not
	// known: those chains are judged by their hooks.
	for k := range jumpedTo {
		if anyChain[[2]string{k.source, k.table}] {
			delete(jumpedTo, k)
		}
	}
	reached = map[chainKey]*path{}
	out := map[chainKey][]int{} // a chain's edges
	var queue []chainKey
	follow := func(e edge, from []string) {
		conds := append(slices.Clip(from), e.conds...)
		if cur := reached[e.to]; cur == nil || len(cur.conds) > 0 && len(conds) == 0 {
			reached[e.to] = &path{conds: conds}
			queue = append(queue, e.to)
		}
	}
	for i, e := range edges {
		if e.base {
			follow(e, nil)
		} else {
			out[e.from] = append(out[e.from], i)
		}
	}
	// A chain is queued when first reached and when first reached without
	// conditions: at most twice, so each edge is followed at most twice.
	for len(queue) > 0 {
		k := queue[0]
		queue = queue[1:]
		for _, i := range out[k] {
			follow(edges[i], reached[k].conds)
		}
	}
	return reached, jumpedTo
}

func (r Rule) hookApplies(dir string) bool {
	if r.Hook == "" {
		if r.Hooks == nil {
			return true // not known: a jump target may be reached from any hook
		}
		for _, h := range r.Hooks {
			if hookApplies(h, dir) {
				return true
			}
		}
		return false
	}
	return hookApplies(r.Hook, dir)
}

// hookApplies reports whether a packet of direction dir ("in", "out")
// passes hook.
func hookApplies(hook, dir string) bool {
	switch hook {
	case "prerouting", "input":
		return dir == "in"
	case "output", "postrouting":
		return dir == "out"
	}
	return false
}

// matches reports whether r applies to p, ignoring r.other and r.ifaces.
func (r Rule) matches(p Packet) bool {
	if !r.hookApplies(p.Direction) {
		return false
	}
	dst, src := p.Dst.Addr().Unmap(), p.Src.Addr().Unmap()
	if (r.family == "ip" && !dst.Is4()) || (r.family == "ip6" && !dst.Is6()) {
		return false
	}
	if r.proto != "" && r.proto != "tcp" {
		return false
	}
	if len(r.ports) > 0 && !inRanges(r.ports, p.Dst.Port()) || inRanges(r.notPorts, p.Dst.Port()) {
		return false
	}
	return inPrefixes(r.dst, dst) && (!src.IsValid() || inPrefixes(r.src, src))
}

// unchecked returns the conditions of r that p leaves open, or false when
// an interface condition rules r out.
func (r Rule) unchecked(p Packet) ([]string, bool) {
	var other []string
	for _, c := range r.other {
		// The packet is a connection's first: a SYN. Other conditions
		// are left open, and the rule may match.
		if tf, ok := c.m.(tcpFlags); ok {
			if !tf.holdsSYN() {
				return nil, false
			}
			continue
		}
		other = append(other, c.text)
	}
	for _, c := range r.ifaces {
		holds, known := c.decide(p)
		switch {
		case !known:
			other = append(other, c.text)
		case !holds:
			return nil, false
		}
	}
	return other, true
}

// ifaceCond is an interface match (-i/-o, iifname/oifname). It is decided
// when the packet's interface is known, and otherwise left unchecked.
type ifaceCond struct {
	in     bool   // the interface the packet arrives on; else the one it leaves by
	name   string // a trailing '+' (iptables) or '*' (nft) makes it a prefix
	negate bool
	text   string // as written, for Hit.Unchecked
}

// decide reports whether the condition holds for p, and whether p says
// enough to tell.
func (c ifaceCond) decide(p Packet) (holds, known bool) {
	dev := p.Out
	if c.in {
		dev = p.In
	}
	if dev == "" {
		return false, false
	}
	return ifaceName(c.name, dev) != c.negate, true
}

func inRanges(rs []portRange, port uint16) bool {
	for _, r := range rs {
		if port >= r.lo && port <= r.hi {
			return true
		}
	}
	return false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// resolveHooks sets each rule's targets (action.next), and Rule.Hooks on
// the rules of every chain of t reached only by jump: the hooks of the
// base chains from which jumps, gotos and verdict maps lead to it. A
// verdict map the parser could not read may lead anywhere: every chain of
// its table is then taken as reachable from its chain's hooks.
func (t *Table) resolveHooks() {
	reach := make([]map[string]bool, len(t.Chains))
	var queue []int
	add := func(ci int, hooks map[string]bool) {
		if reach[ci] == nil {
			reach[ci] = map[string]bool{}
		}
		grew := false
		for h := range hooks {
			if !reach[ci][h] {
				reach[ci][h], grew = true, true
			}
		}
		if grew {
			queue = append(queue, ci)
		}
	}
	index := map[string]int{}
	for ci := range t.Chains {
		index[t.Chains[ci].Name] = ci
		for ri := range t.Chains[ci].Rules {
			r := &t.Chains[ci].Rules[ri]
			r.next = t.targets(r)
		}
	}
	for ci := range t.Chains {
		if h := t.Chains[ci].Hook; h != "" {
			add(ci, map[string]bool{h: true})
		}
	}
	// Every step adds a hook to a chain's set: at most chains × hooks steps.
	for len(queue) > 0 {
		ci := queue[0]
		queue = queue[1:]
		hooks := reach[ci]
		for ri := range t.Chains[ci].Rules {
			for _, target := range t.Chains[ci].Rules[ri].next {
				if target == "" { // anywhere
					for cj := range t.Chains {
						add(cj, hooks)
					}
				} else if cj, ok := index[target]; ok {
					add(cj, hooks)
				}
			}
		}
	}
	for ci := range t.Chains {
		c := &t.Chains[ci]
		if c.Hook != "" {
			continue
		}
		hooks := make([]string, 0, len(reach[ci]))
		for h := range reach[ci] {
			hooks = append(hooks, h)
		}
		slices.Sort(hooks)
		for ri := range c.Rules {
			c.Rules[ri].Hooks = hooks
		}
	}
}

// targets lists the chains r may continue in: a jump's or goto's, and
// the jumps and gotos of a verdict map's elements; "" stands for any
// chain (a verdict map that could not be read).
func (t *Table) targets(r *Rule) []string {
	switch {
	case r.Verdict == "jump" || r.Verdict == "goto":
		return []string{r.JumpTo}
	case r.Verdict != "vmap":
		return nil
	case r.vmap == nil:
		return []string{""}
	}
	elems := r.vmap.elems
	if r.vmap.set != "" {
		s := t.Set(r.vmap.set)
		if s == nil {
			return []string{""}
		}
		elems = s.Elements
	}
	var out []string
	for _, e := range elems {
		switch {
		case e.verdict == nil:
			out = append(out, "")
		case e.verdict.kind == "jump" || e.verdict.kind == "goto":
			out = append(out, e.verdict.chain)
		}
	}
	return out
}
