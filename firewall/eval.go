package firewall

import "net/netip"

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
// base chain of their table decided. rules is a list as Ruleset.Rules
// makes it.
func Evaluate(rules []Rule, p Packet) []Hit {
	type chainKey struct{ source, table, chain string }
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

func (r Rule) hookApplies(dir string) bool {
	switch r.Hook {
	case "":
		return true // a jump target may be reached from any hook
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
	other := texts(r.other)
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
