package doctor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one firewall rule (or a chain's default policy), reduced to what
// the doctor can compare against a TCP connection.
type Rule struct {
	Source     string `json:"source"` // "nftables" or "iptables"
	Table      string `json:"table"`  // "inet filter", "filter"
	Chain      string `json:"chain"`
	Hook       string `json:"hook,omitempty"` // "input", "output", "prerouting", ...; empty for a chain reached by jump
	Text       string `json:"text"`           // the rule as its tool prints it
	Verdict    string `json:"verdict"`        // "accept", "drop", "reject", "jump", "return" or "" (no verdict)
	RejectWith string `json:"reject_with,omitempty"`
	Policy     bool   `json:"policy,omitempty"` // the chain's default policy, not a rule

	family   string // "ip", "ip6", "inet" or "" (both)
	proto    string // "tcp", "udp", ... or "" (any)
	ports    []portRange
	notPorts []portRange // "! --dport": the port must be outside these
	dst      []netip.Prefix
	src      []netip.Prefix
	ifaces   []ifaceCond
	other    []string // conditions the doctor does not evaluate (ct state, marks, ...)
}

// ifaceCond is an interface match (-i/-o, iifname/oifname). It is decided
// when the packet's interface is known, and otherwise left unchecked.
type ifaceCond struct {
	in     bool   // the interface the packet arrives on; else the one it leaves by
	name   string // a trailing '+' (iptables) or '*' (nft) makes it a prefix
	negate bool
	text   string // as written, for Match.Unchecked
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
	holds = dev == c.name
	if n := len(c.name); n > 0 && (c.name[n-1] == '+' || c.name[n-1] == '*') {
		holds = strings.HasPrefix(dev, c.name[:n-1])
	}
	return holds != c.negate, true
}

type portRange struct{ lo, hi uint16 }

// Packet is the connection attempt a rule is compared against: a TCP SYN
// from Src to Dst, passing the hooks of Direction ("in" or "out").
type Packet struct {
	Direction string
	Src, Dst  netip.AddrPort
	// In and Out name the interfaces the packet arrives on and leaves by,
	// "" when unknown (rules matching on them then stay unchecked).
	In, Out string
}

// Match says how a rule applies to a packet: Exact when every condition was
// checked, otherwise the rule may apply depending on Unchecked conditions.
type Match struct {
	Rule      Rule     `json:"rule"`
	Exact     bool     `json:"exact"`
	Unchecked []string `json:"unchecked,omitempty"`
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

// matches reports whether r applies to p, ignoring r.other.
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
	other := r.other[:len(r.other):len(r.other)]
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

// Evaluate walks the chains that p passes, in order, and returns the rules
// that decide its fate: per chain, the first exact match with a verdict of
// accept, drop or reject (or the chain's policy when no rule decides and it
// is not accept), preceded by drop or reject rules that may match but have
// conditions the doctor could not check. Chains reached only by jump count
// when no base chain of their table decided.
func Evaluate(rules []Rule, p Packet) []Match {
	type chainKey struct{ source, table, chain string }
	decided := map[chainKey]bool{}
	tableDecided := map[[2]string]bool{}
	var out []Match
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
					out = append(out, Match{Rule: r, Exact: true})
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
					out = append(out, Match{Rule: r, Unchecked: other})
				}
				continue
			}
			out = append(out, Match{Rule: r, Exact: true})
			decided[k] = true
			tableDecided[[2]string{r.Source, r.Table}] = true
		}
	}
	return out
}

// ParseIptablesSave parses the output of iptables-save or ip6tables-save
// (family "ip" or "ip6"). Chain policies become Rules with Policy set, placed
// after their chain's rules.
func ParseIptablesSave(text, family string) ([]Rule, error) {
	var rules, policies []Rule
	table := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || strings.HasPrefix(s, "#") || s == "COMMIT":
		case strings.HasPrefix(s, "*"):
			table = s[1:]
		case strings.HasPrefix(s, ":"):
			f := strings.Fields(s[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("doctor: iptables-save line %d: malformed chain %q", line, s)
			}
			if f[1] != "-" {
				policies = append(policies, Rule{Source: "iptables", Table: table, Chain: f[0], Hook: iptablesHook(f[0]),
					Text: fmt.Sprintf("-P %s %s", f[0], f[1]), Verdict: strings.ToLower(f[1]), Policy: true, family: family})
			}
		case strings.HasPrefix(s, "-A "):
			r, err := parseIptablesRule(s, table, family)
			if err != nil {
				return nil, fmt.Errorf("doctor: iptables-save line %d: %w", line, err)
			}
			rules = append(rules, r)
		default:
			return nil, fmt.Errorf("doctor: iptables-save line %d: unexpected %q", line, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("doctor: iptables-save: %w", err)
	}
	return append(rules, policies...), nil
}

func iptablesHook(chain string) string {
	switch chain {
	case "INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING":
		return strings.ToLower(chain)
	}
	return ""
}

// splitArgs splits a line as iptables-save quotes it ("a b" is one word).
func splitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case (c == ' ' || c == '\t') && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

func parseIptablesRule(s, table, family string) (Rule, error) {
	args, err := splitArgs(s)
	if err != nil {
		return Rule{}, err
	}
	if len(args) < 2 {
		return Rule{}, fmt.Errorf("rule without chain: %q", s)
	}
	r := Rule{Source: "iptables", Table: table, Chain: args[1], Hook: iptablesHook(args[1]), Text: s, family: family}
	val := func(i int) (string, error) {
		if i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value in %q", args[i], s)
		}
		return args[i+1], nil
	}
	negate := false
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
		case "-p", "--protocol":
			if negate {
				r.other = append(r.other, "! -p "+v)
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
				r.other = append(r.other, "! "+a+" "+v)
			case a == "-d" || a == "--destination":
				r.dst = append(r.dst, ps...)
			default:
				r.src = append(r.src, ps...)
			}
		case "-j", "--jump", "-g", "--goto":
			r.Verdict = strings.ToLower(v)
			switch r.Verdict {
			case "accept", "drop", "reject", "return":
			default:
				r.Verdict = "jump"
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
		case "-c", "--set-counters":
			if i+2 >= len(args) {
				return Rule{}, fmt.Errorf("%s needs two values in %q", a, s)
			}
			i++
		default:
			if !strings.HasPrefix(a, "-") {
				return Rule{}, fmt.Errorf("unexpected word %q in %q", a, s)
			}
			// An option we do not evaluate; keep it (and its value) as a condition.
			cond := a
			if verr == nil && !strings.HasPrefix(v, "-") && v != "!" {
				cond += " " + v
			} else {
				takes = false
			}
			if negate {
				cond = "! " + cond
			}
			r.other = append(r.other, cond)
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

// ParseNftJSON parses `nft -j list ruleset`. texts, when not nil, maps
// "family table chain handle" to the rule as `nft -a list ruleset` prints it
// (see ParseNftText), so evidence quotes the user's own syntax. Chain
// policies become Rules with Policy set, after their chain's rules.
func ParseNftJSON(data []byte, texts map[string]string) ([]Rule, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("doctor: nft JSON: %w", err)
	}
	type chain struct {
		Family, Table, Name, Type, Hook, Policy string
		Prio                                    int
	}
	var rules, policies []Rule
	hooks := map[string]string{}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var c chain
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, fmt.Errorf("doctor: nft JSON chain: %w", err)
			}
			hooks[c.Family+" "+c.Table+" "+c.Name] = c.Hook
			if c.Hook != "" && c.Policy != "" {
				policies = append(policies, Rule{Source: "nftables", Table: c.Family + " " + c.Table, Chain: c.Name, Hook: c.Hook,
					Text: fmt.Sprintf("chain %s { type %s hook %s priority %d; policy %s; }", c.Name, c.Type, c.Hook, c.Prio, c.Policy), Verdict: c.Policy, Policy: true, family: nftFamily(c.Family)})
			}
		}
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var jr struct {
			Family, Table, Chain string
			Handle               int
			Expr                 []map[string]json.RawMessage
		}
		if err := json.Unmarshal(raw, &jr); err != nil {
			return nil, fmt.Errorf("doctor: nft JSON rule: %w", err)
		}
		r := Rule{Source: "nftables", Table: jr.Family + " " + jr.Table, Chain: jr.Chain, Hook: hooks[jr.Family+" "+jr.Table+" "+jr.Chain], family: nftFamily(jr.Family)}
		var words []string
		for _, e := range jr.Expr {
			words = append(words, r.addNftExpr(e)...)
		}
		r.Text = texts[fmt.Sprintf("%s %s %s %d", jr.Family, jr.Table, jr.Chain, jr.Handle)]
		if r.Text == "" {
			r.Text = strings.Join(words, " ")
		}
		rules = append(rules, r)
	}
	return append(rules, policies...), nil
}

func nftFamily(f string) string {
	switch f {
	case "ip", "ip6", "inet":
		return f
	}
	return "" // bridge, netdev, arp: not evaluated by address family
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
			r.Verdict = "jump"
			return []string{kind + " " + string(raw)}
		case "xt":
			var xt struct{ Type, Name string }
			_ = json.Unmarshal(raw, &xt)
			if xt.Type == "target" && xt.Name == "REJECT" {
				r.Verdict, r.RejectWith = "reject", "(iptables REJECT)"
			} else {
				r.other = append(r.other, "xt "+xt.Type+" "+xt.Name)
			}
			return []string{"xt " + xt.Name}
		default:
			r.other = append(r.other, kind)
			return []string{kind}
		}
	}
	return nil
}

func (r *Rule) addNftMatch(raw json.RawMessage) []string {
	var m struct {
		Op    string
		Left  map[string]json.RawMessage
		Right json.RawMessage
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		r.other = append(r.other, "match")
		return []string{"match"}
	}
	field := ""
	if p, ok := m.Left["payload"]; ok {
		var pl struct{ Protocol, Field string }
		_ = json.Unmarshal(p, &pl)
		field = pl.Protocol + " " + pl.Field
	} else if p, ok := m.Left["meta"]; ok {
		var mk struct{ Key string }
		_ = json.Unmarshal(p, &mk)
		field = "meta " + mk.Key
	} else {
		for k := range m.Left {
			field = k
		}
	}
	text := fmt.Sprintf("%s %s %s", field, m.Op, string(m.Right))
	if name := ""; (field == "meta iifname" || field == "meta oifname") && (m.Op == "==" || m.Op == "!=") && json.Unmarshal(m.Right, &name) == nil {
		r.ifaces = append(r.ifaces, ifaceCond{in: field == "meta iifname", name: name, negate: m.Op == "!=", text: text})
		return []string{text}
	}
	if m.Op != "==" && m.Op != "in" {
		r.other = append(r.other, text)
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
	r.other = append(r.other, text)
	return []string{text}
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
	for _, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		body, comment, _ := strings.Cut(s, "# handle ")
		body = strings.TrimSpace(body)
		f := strings.Fields(body)
		switch {
		case len(f) >= 3 && f[0] == "table" && f[len(f)-1] == "{":
			table, chain = f[1]+" "+f[2], ""
		case len(f) >= 2 && f[0] == "chain" && f[len(f)-1] == "{":
			chain = f[1]
		case body == "}":
			if chain != "" {
				chain = ""
			} else {
				table = ""
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
