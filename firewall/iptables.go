package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseError says where a tool's output could not be read.
type ParseError struct {
	Tool string // "iptables-save", "nft JSON"
	Line int    // 1-based; 0 when the output has no lines to name
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("firewall: %s line %d: %v", e.Tool, e.Line, e.Err)
	}
	return fmt.Sprintf("firewall: %s: %v", e.Tool, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ParseIptablesSave parses the output of iptables-save or ip6tables-save
// (family "ip" or "ip6"): every table in it, each chain with its policy and
// rules.
func ParseIptablesSave(text, family string) (*Ruleset, error) {
	rs := &Ruleset{}
	var t *Table
	table := func() *Table {
		if t == nil { // rules before any "*table" line
			rs.Tables = append(rs.Tables, Table{Source: Iptables, Family: family})
			t = &rs.Tables[len(rs.Tables)-1]
		}
		return t
	}
	sizes := chainSizes(text)
	chain := func(name string) *Chain {
		c := table().chain(name)
		if c.Rules == nil {
			c.Rules = make([]Rule, 0, sizes[[2]string{t.Name, name}])
		}
		c.Hook = iptablesHook(name)
		c.Type, c.Priority = iptablesChainType(t.Name, c.Hook)
		return c
	}
	line := 0
	var args []string
	for rest := text; rest != ""; {
		var s string
		s, rest, _ = strings.Cut(rest, "\n")
		line++
		s = strings.TrimSpace(s)
		switch {
		case s == "" || strings.HasPrefix(s, "#") || s == "COMMIT":
		case strings.HasPrefix(s, "*"):
			rs.Tables = append(rs.Tables, Table{Source: Iptables, Family: family, Name: s[1:]})
			t = &rs.Tables[len(rs.Tables)-1]
		case strings.HasPrefix(s, ":"):
			f := strings.Fields(s[1:])
			if len(f) < 2 {
				return nil, &ParseError{"iptables-save", line, fmt.Errorf("malformed chain %q", s)}
			}
			c := chain(f[0])
			if f[1] != "-" {
				c.Policy = strings.ToLower(f[1])
			}
		case strings.HasPrefix(s, "-A "):
			var r Rule
			var err error
			r, args, err = parseIptablesRule(s, table().Name, family, args)
			if err != nil {
				return nil, &ParseError{"iptables-save", line, err}
			}
			c := chain(r.Chain)
			c.Rules = append(c.Rules, r)
		default:
			return nil, &ParseError{"iptables-save", line, fmt.Errorf("unexpected %q", s)}
		}
	}
	for i := range rs.Tables {
		resolveTargets(&rs.Tables[i])
		rs.Tables[i].resolveHooks()
	}
	return rs, nil
}

// chainSizes counts each chain's rules ("-A" lines) by table, so a
// chain's rules are allocated once: kube-proxy's KUBE-SERVICES has one
// per Service.
func chainSizes(text string) map[[2]string]int {
	sizes := map[[2]string]int{}
	table := ""
	for rest := text; rest != ""; {
		var s string
		s, rest, _ = strings.Cut(rest, "\n")
		s = strings.TrimSpace(s)
		switch {
		case strings.HasPrefix(s, "*"):
			table = s[1:]
		case strings.HasPrefix(s, "-A "):
			name, _, _ := strings.Cut(strings.TrimLeft(s[3:], " \t"), " ")
			sizes[[2]string{table, name}]++
		}
	}
	return sizes
}

// resolveTargets tells jumps from other targets: "-j NAME" jumps when the
// table has a chain NAME, and names a target extension (LOG, MARK, ...)
// otherwise.
func resolveTargets(t *Table) {
	for ci := range t.Chains {
		for ri := range t.Chains[ci].Rules {
			r := &t.Chains[ci].Rules[ri]
			if r.Verdict == "jump" && t.Chain(r.JumpTo) == nil {
				r.Verdict, r.JumpTo = strings.ToLower(r.JumpTo), ""
			}
		}
	}
}

func iptablesHook(chain string) string {
	switch chain {
	case "INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING":
		return strings.ToLower(chain)
	}
	return ""
}

// iptablesChainType gives a built-in chain of table the type and priority
// iptables registers it with (as iptables-nft declares them in nftables).
func iptablesChainType(table, hook string) (typ string, prio int) {
	if hook == "" {
		return "", 0
	}
	switch table {
	case "raw":
		return "filter", -300
	case "mangle":
		if hook == "output" {
			return "route", -150
		}
		return "filter", -150
	case "nat":
		if hook == "prerouting" || hook == "output" {
			return "nat", -100
		}
		return "nat", 100
	case "security":
		return "filter", 50
	}
	return "filter", 0
}

// splitArgs splits a line as iptables-save quotes it ("a b" is one word;
// \" and \\ escape inside quotes), appending to out[:0]. Unquoted words
// are slices of s.
func splitArgs(s string, out []string) ([]string, error) {
	out = out[:0]
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '"' {
			i++
		}
		if i == len(s) || s[i] != '"' {
			out = append(out, s[start:i])
			continue
		}
		var cur strings.Builder
		quoted := false
		for i = start; i < len(s); i++ {
			c := s[i]
			if c == '\\' && quoted && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
				continue
			}
			if c == '"' {
				quoted = !quoted
				continue
			}
			if (c == ' ' || c == '\t') && !quoted {
				break
			}
			cur.WriteByte(c)
		}
		if quoted {
			return nil, fmt.Errorf("unterminated quote in %q", s)
		}
		out = append(out, cur.String())
	}
	return out, nil
}

// parseIptablesRule parses one "-A" line; args is scratch space for its
// words, returned for the next line.
func parseIptablesRule(s, table, family string, args []string) (Rule, []string, error) {
	args, err := splitArgs(s, args)
	if err != nil {
		return Rule{}, args, err
	}
	r, err := iptablesRule(s, table, family, args)
	return r, args, err
}

// iptablesRule reads the words of an "-A" line.
func iptablesRule(s, table, family string, args []string) (Rule, error) {
	if len(args) < 2 {
		return Rule{}, fmt.Errorf("rule without chain: %q", s)
	}
	r := Rule{Source: Iptables, Table: table, Chain: args[1], Hook: iptablesHook(args[1]), Text: s,
		conds: conds{family: family}}
	val := func(i int) (string, error) {
		if i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value in %q", args[i], s)
		}
		return args[i+1], nil
	}
	negate, target := false, false
	module := "" // the last -m: what its options mean
	for i := 2; i < len(args); i++ {
		a := args[i]
		if a == "!" {
			negate = true
			continue
		}
		takes := true
		v, verr := val(i)
		switch a {
		case "-m", "--match":
			// Modules only enable options; the options are what we read.
			module = strings.ToLower(v)
		case "-p", "--protocol":
			if negate {
				r.other = append(r.other, cond{"! -p " + v, notProto{v}})
			} else if v != "all" {
				r.proto = strings.ToLower(v)
			}
		case "--dport", "--destination-port", "--dports", "--destination-ports":
			if verr != nil {
				return Rule{}, verr
			}
			pr, err := parsePortList(v, ",", ":")
			if err != nil {
				return Rule{}, err
			}
			if negate {
				r.notPorts = append(r.notPorts, pr...)
			} else {
				r.ports = append(r.ports, pr...)
			}
		case "-d", "--destination", "-s", "--source":
			if verr != nil {
				return Rule{}, verr
			}
			ps, err := parsePrefixes(v)
			if err != nil {
				return Rule{}, err
			}
			switch {
			case negate:
				r.other = append(r.other, cond{"! " + a + " " + v, notPrefix{src: a == "-s" || a == "--source", ps: ps}})
			case a == "-d" || a == "--destination":
				r.dst = append(r.dst, ps...)
			default:
				r.src = append(r.src, ps...)
			}
		case "-j", "--jump", "-g", "--goto":
			target = true
			r.Verdict = strings.ToLower(v)
			switch r.Verdict {
			case "accept", "drop", "reject", "return", "dnat", "snat", "masquerade", "redirect":
			default:
				r.target = v
				// A chain, or a target extension: told apart once the
				// table's chains are known (resolveTargets).
				r.Verdict, r.JumpTo = "jump", v
				if a == "-g" || a == "--goto" {
					r.Verdict = "goto"
				}
			}
		case "-i", "--in-interface", "-o", "--out-interface":
			if verr != nil {
				return Rule{}, verr
			}
			text := a + " " + v
			if negate {
				text = "! " + text
			}
			r.ifaces = append(r.ifaces, ifaceCond{in: a == "-i" || a == "--in-interface", name: v, negate: negate, text: text})
		case "--reject-with":
			r.RejectWith = v
		case "--comment":
			// Says nothing about which packets match.
			r.Comment = v
		case "-c", "--set-counters":
			if i+2 >= len(args) {
				return Rule{}, fmt.Errorf("%s needs two values in %q", a, s)
			}
			i++
		default:
			if !strings.HasPrefix(a, "-") {
				return Rule{}, fmt.Errorf("unexpected word %q in %q", a, s)
			}
			// An option Evaluate does not check, with its values (none
			// for a flag, two for --tcp-flags or --match-set): a condition,
			// unless it follows the target: then it is the target's
			// (--log-prefix, --set-xmark), and the text keeps it.
			takes = false
			var vals []string
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && args[i+1] != "!" {
				i++
				vals = append(vals, args[i])
			}
			text := strings.Join(append([]string{a}, vals...), " ")
			if negate {
				text = "! " + text
			}
			switch {
			case !target:
				r.other = append(r.other, cond{text, iptablesMatcher(module, a, vals, negate)})
			case len(vals) == 1 && (a == "--to-destination" || a == "--to-source" || a == "--to-ports"):
				r.To = vals[0]
			case strings.EqualFold(r.target, "CT") && a == "--notrack":
				r.Verdict = "notrack"
			default:
				if op, ok := iptablesMark(strings.ToLower(r.target), a, strings.Join(vals, " ")); ok {
					r.mark = &op
				}
			}
		}
		if verr != nil && takes && a != "-m" {
			return Rule{}, verr
		}
		if takes {
			i++
		}
		negate = false
	}
	if r.Verdict == "reject" && r.RejectWith == "" {
		r.RejectWith = "icmp-port-unreachable"
	}
	switch r.Verdict {
	case "dnat", "snat":
		r.nat, _ = parseNatTo(r.To, false)
	case "redirect", "masquerade":
		r.nat, _ = parseNatTo(r.To, true)
	}
	return r, nil
}

// parsePortList parses "80", "8000:8100" (sep ","), as iptables writes them.
func parsePortList(s, sep, rangeSep string) ([]portRange, error) {
	var out []portRange
	for _, part := range strings.Split(s, sep) {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), rangeSep)
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
		}
		if b < a {
			return nil, fmt.Errorf("port range %q is backwards", part)
		}
		out = append(out, portRange{a, b})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		p, err := parsePrefix(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad address %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
