package firewall

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseNftJSON parses `nft -j list ruleset`: every table in it, each chain
// with its hook, priority, policy and rules. texts, when not nil, maps
// "family table chain handle" to the rule as `nft -a list ruleset` prints
// it (see ParseNftText), so Rule.Text quotes the user's own syntax.
func ParseNftJSON(data []byte, texts map[string]string) (*Ruleset, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, &ParseError{"nft JSON", 0, err}
	}
	rs := &Ruleset{}
	table := func(family, name string) *Table {
		for i := range rs.Tables {
			if t := &rs.Tables[i]; t.Family == family && t.Name == name {
				return t
			}
		}
		rs.Tables = append(rs.Tables, Table{Source: Nftables, Family: family, Name: name})
		return &rs.Tables[len(rs.Tables)-1]
	}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["table"]; ok {
			var t struct{ Family, Name string }
			if err := json.Unmarshal(raw, &t); err != nil {
				return nil, &ParseError{"nft JSON table", 0, err}
			}
			table(t.Family, t.Name)
		}
		if raw, ok := obj["chain"]; ok {
			var jc struct {
				Family, Table, Name, Type, Hook, Policy string
				Prio                                    int
			}
			if err := json.Unmarshal(raw, &jc); err != nil {
				return nil, &ParseError{"nft JSON chain", 0, err}
			}
			c := table(jc.Family, jc.Table).chain(jc.Name)
			c.Hook, c.Type, c.Priority = jc.Hook, jc.Type, jc.Prio
			if jc.Hook != "" {
				c.Policy = jc.Policy
			}
		}
		for _, kind := range []string{"set", "map"} {
			raw, ok := obj[kind]
			if !ok {
				continue
			}
			if err := addNftSet(raw, kind == "map", table); err != nil {
				return nil, &ParseError{"nft JSON " + kind, 0, err}
			}
		}
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var jr struct {
			Family, Table, Chain, Comment string
			Handle                        int
			Expr                          []map[string]json.RawMessage
		}
		if err := json.Unmarshal(raw, &jr); err != nil {
			return nil, &ParseError{"nft JSON rule", 0, err}
		}
		t := table(jr.Family, jr.Table)
		c := t.chain(jr.Chain)
		r := Rule{Source: Nftables, Table: t.Label(), Chain: jr.Chain, Hook: c.Hook, Comment: jr.Comment,
			conds: conds{family: t.evalFamily()}}
		var words []string
		for _, e := range jr.Expr {
			words = append(words, r.addNftExpr(e)...)
		}
		r.Text = texts[fmt.Sprintf("%s %s %s %d", jr.Family, jr.Table, jr.Chain, jr.Handle)]
		if r.Text == "" {
			r.Text = strings.Join(words, " ")
		}
		c.Rules = append(c.Rules, r)
	}
	// A chain's rules carry its hook, also where nft listed a rule first.
	for ti := range rs.Tables {
		t := &rs.Tables[ti]
		for _, c := range t.Chains {
			for i := range c.Rules {
				c.Rules[i].Hook = c.Hook
			}
		}
		t.resolveHooks()
	}
	return rs, nil
}

// addNftExpr folds one JSON expression into r and returns it rendered.
func (r *Rule) addNftExpr(e map[string]json.RawMessage) []string {
	for kind, raw := range e {
		switch kind {
		case "match":
			return r.addNftMatch(raw)
		case "counter", "log", "limit", "comment":
			return nil
		case "accept", "drop", "return":
			r.Verdict = kind
			return []string{kind}
		case "reject":
			r.Verdict = "reject"
			var rj struct{ Type, Expr string }
			_ = json.Unmarshal(raw, &rj) // null means the default
			r.RejectWith = strings.TrimSpace(rj.Type + " " + rj.Expr)
			if r.RejectWith == "" {
				r.RejectWith = "icmp port-unreachable"
			}
			return []string{"reject with " + r.RejectWith}
		case "jump", "goto":
			var j struct{ Target string }
			_ = json.Unmarshal(raw, &j)
			r.Verdict, r.JumpTo = kind, j.Target
			return []string{kind + " " + j.Target}
		case "dnat", "snat", "masquerade", "redirect":
			r.Verdict, r.To = kind, nftNATTo(raw)
			if n, ok := nftNat(raw); ok {
				r.nat = n
			}
			if r.To == "" {
				return []string{kind}
			}
			return []string{kind + " to " + r.To}
		case "vmap":
			r.Verdict = "vmap"
			if vm, err := parseVmap(raw); err == nil {
				r.vmap = vm
			}
			return []string{"vmap"}
		case "mangle":
			// A statement: "meta mark set ..." changes the packet's mark;
			// others (ct mark set, ...) change nothing the walk reads.
			if op, ok := nftMarkSet(raw); ok {
				r.Verdict, r.mark = "mark", &op
				return []string{"meta mark set"}
			}
			return []string{kind}
		case "notrack":
			r.Verdict = "notrack"
			return []string{kind}
		case "update", "set":
			// Statements that change a set, not the packet.
			return []string{kind}
		case "xt":
			var xt struct{ Type, Name string }
			_ = json.Unmarshal(raw, &xt)
			switch {
			case xt.Type == "target" && xt.Name == "REJECT":
				r.Verdict, r.RejectWith = "reject", "(iptables REJECT)"
			case xt.Type == "target":
				// iptables-nft's target (DNAT, MASQUERADE, ...): nft -j
				// does not show its options.
				r.Verdict = strings.ToLower(xt.Name)
			default:
				r.other = append(r.other, cond{text: "xt " + xt.Type + " " + xt.Name})
			}
			return []string{"xt " + xt.Name}
		default:
			r.other = append(r.other, cond{text: kind})
			return []string{kind}
		}
	}
	return nil
}

// nftNATTo renders where a dnat, snat, masquerade or redirect statement
// translates to: "198.19.0.2:80", "[fd00::2]:80", "443" (ports only); an
// address or port given by an expression (a map, a range) as its JSON.
func nftNATTo(raw json.RawMessage) string {
	var st struct{ Addr, Port json.RawMessage }
	if json.Unmarshal(raw, &st) != nil {
		return ""
	}
	var addr string
	if len(st.Addr) > 0 && json.Unmarshal(st.Addr, &addr) != nil {
		addr = string(st.Addr)
	}
	var port string
	if len(st.Port) > 0 {
		var n uint16
		var rg struct{ Range [2]uint16 }
		switch {
		case json.Unmarshal(st.Port, &n) == nil:
			port = strconv.Itoa(int(n))
		case json.Unmarshal(st.Port, &rg) == nil && rg.Range[1] != 0:
			port = fmt.Sprintf("%d-%d", rg.Range[0], rg.Range[1])
		default:
			port = string(st.Port)
		}
	}
	switch {
	case addr == "":
		return port
	case port == "":
		return addr
	}
	if _, err := netip.ParseAddr(addr); err == nil {
		return net.JoinHostPort(addr, port)
	}
	return addr + ":" + port
}
func (r *Rule) addNftMatch(raw json.RawMessage) []string {
	var m struct {
		Op    string
		Left  map[string]json.RawMessage
		Right json.RawMessage
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		r.other = append(r.other, cond{text: "match"})
		return []string{"match"}
	}
	field := nftExprText(m.Left)
	text := fmt.Sprintf("%s %s %s", field, m.Op, nftValueText(m.Right))
	if name := ""; (field == "meta iifname" || field == "meta oifname") && (m.Op == "==" || m.Op == "!=") && json.Unmarshal(m.Right, &name) == nil {
		r.ifaces = append(r.ifaces, ifaceCond{in: field == "meta iifname", name: name, negate: m.Op == "!=", text: text})
		return []string{text}
	}
	if m.Op != "==" && m.Op != "in" {
		r.other = append(r.other, cond{text, nftMatcher(m.Left, m.Op, m.Right)})
		return []string{text}
	}
	switch {
	case field == "meta l4proto" || field == "ip protocol" || field == "ip6 nexthdr":
		var p string
		if json.Unmarshal(m.Right, &p) == nil {
			r.proto = p
			return []string{field + " " + p}
		}
	case strings.HasSuffix(field, " dport") && field != "th dport":
		r.proto = strings.TrimSuffix(field, " dport")
		fallthrough
	case field == "th dport":
		if pr, ok := nftPorts(m.Right); ok {
			r.ports = append(r.ports, pr...)
			return []string{field + " " + string(m.Right)}
		}
	case field == "ip daddr" || field == "ip6 daddr" || field == "ip saddr" || field == "ip6 saddr":
		if ps, ok := nftPrefixes(m.Right); ok {
			if strings.HasSuffix(field, "daddr") {
				r.dst = append(r.dst, ps...)
			} else {
				r.src = append(r.src, ps...)
			}
			if r.family == "inet" || r.family == "" {
				r.family = strings.Fields(field)[0]
			}
			return []string{field + " " + string(m.Right)}
		}
	}
	r.other = append(r.other, cond{text, nftMatcher(m.Left, m.Op, m.Right)})
	return []string{text}
}

// nftExprText renders a match's left side: "ip daddr", "meta mark",
// "fib daddr type", "ct state", "meta mark & 16384".
func nftExprText(left map[string]json.RawMessage) string {
	for kind, body := range left {
		switch kind {
		case "payload":
			var pl struct{ Protocol, Field string }
			_ = json.Unmarshal(body, &pl)
			return pl.Protocol + " " + pl.Field
		case "meta", "ct":
			var k struct{ Key string }
			_ = json.Unmarshal(body, &k)
			return kind + " " + k.Key
		case "fib":
			var fb struct {
				Result string
				Flags  json.RawMessage
			}
			_ = json.Unmarshal(body, &fb)
			return "fib " + strings.Join(stringList(fb.Flags), " . ") + " " + fb.Result
		case "&", "|", "^":
			var mixed []json.RawMessage
			if json.Unmarshal(body, &mixed) == nil && len(mixed) == 2 {
				var l map[string]json.RawMessage
				_ = json.Unmarshal(mixed[0], &l)
				return nftExprText(l) + " " + kind + " " + nftValueText(mixed[1])
			}
		case "concat":
			var list []map[string]json.RawMessage
			_ = json.Unmarshal(body, &list)
			parts := make([]string, len(list))
			for i, e := range list {
				parts[i] = nftExprText(e)
			}
			return strings.Join(parts, " . ")
		}
		return kind
	}
	return ""
}

// nftValueText renders a match's right side as nft writes it: prefixes,
// ranges, sets and concatenations; strings stay quoted, and anything else
// stays JSON.
func nftValueText(raw json.RawMessage) string {
	var s struct{ Set []json.RawMessage }
	if json.Unmarshal(raw, &s) == nil && len(s.Set) > 0 {
		parts := make([]string, len(s.Set))
		for i, e := range s.Set {
			parts[i] = nftValueText(e)
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		if parts, _, ok := parseKey(raw); ok {
			list := make([]string, len(parts))
			for i, p := range parts {
				list[i] = p.String()
			}
			return strings.Join(list, " . ")
		}
	}
	return string(raw)
}

// nftMatcher types a match Evaluate does not check, for the walk: ct
// state and status, and any comparison of an expression it can evaluate
// (fib types, marks, negations, sets by name); nil for others.
func nftMatcher(left map[string]json.RawMessage, op string, right json.RawMessage) matcher {
	if m, ok := nftTCPFlags(left, op, right); ok {
		return m
	}
	if ct, ok := left["ct"]; ok {
		var k struct{ Key string }
		if json.Unmarshal(ct, &k) != nil || (k.Key != "state" && k.Key != "status") || (op != "==" && op != "in" && op != "!=") {
			return nil
		}
		var names []string
		if json.Unmarshal(right, &names) != nil {
			var one string
			if json.Unmarshal(right, &one) != nil {
				return nil
			}
			names = []string{one}
		}
		for i := range names {
			names[i] = strings.ToUpper(names[i])
		}
		if k.Key == "state" {
			return ctState{states: names, neg: op == "!="}
		}
		return ctStatus{statuses: names, neg: op == "!="}
	}
	switch op {
	case "==", "in", "!=", "<", "<=", ">", ">=":
	default:
		return nil
	}
	lraw, err := json.Marshal(left)
	if err != nil {
		return nil
	}
	key, ok := parseKeyExpr(lraw)
	if !ok {
		return nil
	}
	elems, set, ok := parseRight(right)
	if !ok {
		return nil
	}
	if op == "in" {
		op = "=="
	}
	return exprMatch{key: key, op: op, elems: elems, set: set}
}

// nftMarkSet reads "meta mark set EXPR" where EXPR is a constant or the
// mark combined with one (|, &, ^).
func nftMarkSet(raw json.RawMessage) (markOp, bool) {
	var mg struct{ Key, Value json.RawMessage }
	if json.Unmarshal(raw, &mg) != nil {
		return markOp{}, false
	}
	key, ok := parseKeyExpr(mg.Key)
	if !ok || len(key) != 1 || key[0].kind != "mark" {
		return markOp{}, false
	}
	if v, ok := parseValue(mg.Value); ok && v.kind == vNum && v.num <= 0xffffffff {
		return markOp{and: 0, xor: uint32(v.num)}, true
	}
	var expr map[string][]json.RawMessage
	if json.Unmarshal(mg.Value, &expr) != nil || len(expr) != 1 {
		return markOp{unknown: true}, true
	}
	for op, args := range expr {
		if len(args) != 2 {
			break
		}
		k, ok1 := parseKeyExpr(args[0])
		n, ok2 := parseValue(args[1])
		if !ok1 || !ok2 || len(k) != 1 || k[0].kind != "mark" || n.kind != vNum || n.num > 0xffffffff {
			break
		}
		c := uint32(n.num)
		switch op {
		case "|":
			return markOp{and: ^c, xor: c}, true
		case "&":
			return markOp{and: c}, true
		case "^":
			return markOp{and: 0xffffffff, xor: c}, true
		}
	}
	return markOp{unknown: true}, true
}

// nftPorts reads a port match's right side: a number, a range or a set.
func nftPorts(raw json.RawMessage) ([]portRange, bool) {
	var n uint16
	if json.Unmarshal(raw, &n) == nil {
		return []portRange{{n, n}}, true
	}
	var rg struct{ Range [2]uint16 }
	if json.Unmarshal(raw, &rg) == nil && rg.Range[1] != 0 {
		return []portRange{{rg.Range[0], rg.Range[1]}}, rg.Range[0] <= rg.Range[1]
	}
	var set struct{ Set []json.RawMessage }
	if json.Unmarshal(raw, &set) == nil && len(set.Set) > 0 {
		var out []portRange
		for _, el := range set.Set {
			pr, ok := nftPorts(el)
			if !ok {
				return nil, false
			}
			out = append(out, pr...)
		}
		return out, true
	}
	return nil, false
}

// nftPrefixes reads an address match's right side: an address, a prefix or a set.
func nftPrefixes(raw json.RawMessage) ([]netip.Prefix, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		p, err := parsePrefix(s)
		return []netip.Prefix{p}, err == nil
	}
	var px struct {
		Prefix struct {
			Addr string
			Len  int
		}
	}
	if json.Unmarshal(raw, &px) == nil && px.Prefix.Addr != "" {
		a, err := netip.ParseAddr(px.Prefix.Addr)
		if err != nil || px.Prefix.Len < 0 || px.Prefix.Len > a.BitLen() {
			return nil, false
		}
		return []netip.Prefix{netip.PrefixFrom(a, px.Prefix.Len).Masked()}, true
	}
	var set struct{ Set []json.RawMessage }
	if json.Unmarshal(raw, &set) == nil && len(set.Set) > 0 {
		var out []netip.Prefix
		for _, el := range set.Set {
			ps, ok := nftPrefixes(el)
			if !ok {
				return nil, false
			}
			out = append(out, ps...)
		}
		return out, true
	}
	return nil, false
}

// ParseNftText maps "family table chain handle" to each rule's text in the
// output of `nft -a list ruleset` (counters and the handle comment removed).
func ParseNftText(text string) map[string]string {
	out := map[string]string{}
	var table, chain string
	// The blocks open: "table", "chain", or "" for others (a set, a map,
	// a flowtable), whose closing brace must not end the table.
	var open []string
	for _, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		body, comment, _ := strings.Cut(s, "# handle ")
		body = strings.TrimSpace(body)
		f := strings.Fields(body)
		switch {
		case len(f) >= 3 && f[0] == "table" && f[len(f)-1] == "{":
			table, chain, open = f[1]+" "+f[2], "", []string{"table"}
		case len(f) >= 2 && f[0] == "chain" && f[len(f)-1] == "{":
			chain, open = f[1], append(open, "chain")
		case len(f) >= 2 && f[len(f)-1] == "{":
			open = append(open, "")
		case body == "}":
			if len(open) > 0 {
				switch open[len(open)-1] {
				case "chain":
					chain = ""
				case "table":
					table, chain = "", ""
				}
				open = open[:len(open)-1]
			}
		case comment != "" && table != "" && chain != "" && body != "":
			h, err := strconv.Atoi(strings.TrimSpace(comment))
			if err == nil {
				out[fmt.Sprintf("%s %s %d", table, chain, h)] = stripCounter(body)
			}
		}
	}
	return out
}

// stripCounter drops "counter packets N bytes M", which changes every time.
func stripCounter(s string) string {
	f := strings.Fields(s)
	for i := 0; i+5 <= len(f); i++ {
		if f[i] == "counter" && f[i+1] == "packets" && f[i+3] == "bytes" {
			f = append(f[:i], f[i+5:]...)
			break
		}
	}
	return strings.Join(f, " ")
}

// nftTCPFlags reads a tcp flags match: "tcp flags & (syn | ack) == syn"
// (nft 1.0 prints "tcp flags syn / syn,ack"), "tcp flags == syn", "tcp
// flags != syn", "tcp flags { syn, syn | ack }", and the bit tests "tcp
// flags syn" (op "in": any of them set) and "tcp flags ! syn" (none set).
// false when the match is not one, or has a form it does not know.
func nftTCPFlags(left map[string]json.RawMessage, op string, right json.RawMessage) (tcpFlags, bool) {
	if len(left) != 1 {
		return tcpFlags{}, false
	}
	m := tcpFlags{mask: 0xff}
	field := left["payload"]
	if and, ok := left["&"]; ok {
		var args []json.RawMessage
		if json.Unmarshal(and, &args) != nil || len(args) != 2 {
			return tcpFlags{}, false
		}
		var l map[string]json.RawMessage
		if json.Unmarshal(args[0], &l) != nil || len(l) != 1 {
			return tcpFlags{}, false
		}
		mask, ok := nftFlagBits(args[1])
		if !ok {
			return tcpFlags{}, false
		}
		field, m.mask = l["payload"], mask
	}
	var pl struct{ Protocol, Field string }
	if field == nil || json.Unmarshal(field, &pl) != nil || pl.Protocol != "tcp" || pl.Field != "flags" {
		return tcpFlags{}, false
	}
	var set struct{ Set []json.RawMessage }
	if json.Unmarshal(right, &set) == nil && set.Set != nil {
		if op != "==" && op != "!=" && op != "in" {
			return tcpFlags{}, false
		}
		for _, e := range set.Set {
			v, ok := nftFlagBits(e)
			if !ok {
				return tcpFlags{}, false
			}
			m.comps = append(m.comps, v)
		}
		m.neg = op == "!="
		return m, len(m.comps) > 0
	}
	v, ok := nftFlagBits(right)
	if !ok {
		return tcpFlags{}, false
	}
	m.comps = []uint8{v}
	switch op {
	case "==", "!=":
		m.neg = op == "!="
	case "in", "!":
		m.bits, m.neg = true, op == "!"
	default:
		return tcpFlags{}, false
	}
	return m, true
}

// nftFlagBits reads tcp flags as nft -j writes them: a name ("syn"), a
// number, a list of them or an OR ({"|": [...]}) of them.
func nftFlagBits(raw json.RawMessage) (uint8, bool) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		b, ok := parseTCPFlags(name)
		return b, ok && !strings.EqualFold(name, "all") && !strings.EqualFold(name, "none")
	}
	var n uint8
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		var or map[string][]json.RawMessage
		if json.Unmarshal(raw, &or) != nil || len(or) != 1 || len(or["|"]) == 0 {
			return 0, false
		}
		list = or["|"]
	}
	if len(list) == 0 {
		return 0, false
	}
	var out uint8
	for _, e := range list {
		b, ok := nftFlagBits(e)
		if !ok {
			return 0, false
		}
		out |= b
	}
	return out, true
}
