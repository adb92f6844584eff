package firewall

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// This file reads macOS's packet filter as pfctl -sr prints its rules, and
// the Application Firewall's state as socketfilterfw reports it. pf is not
// netfilter: the last rule that matches decides, unless a quick rule
// matched before it, and no rule at all means pass. A sibling model
// (PFRule) keeps that apart from the chains of Ruleset.

// ErrSyntax means a firewall tool's output (pfctl, socketfilterfw, netsh)
// could not be read; the error names the line.
var ErrSyntax = errors.New("firewall: output not understood")

// PFRule is one rule of pfctl -sr.
type PFRule struct {
	Line   int    // 1-based line in pfctl's output
	Text   string // the rule as pfctl printed it
	Action string // "pass", "block", or another keyword (match, scrub, anchor, ...)
	// Return is set for block return / return-rst / return-icmp: the
	// sender is answered (a reset: "refused"), where block drop is silent.
	Return    bool
	Direction string // "in", "out", or "" for both
	Quick     bool
	Interface string // on IFACE, "" for any
	Family    string // "inet", "inet6", or "" for both
	Proto     string // "tcp", "udp", ..., "" for any
	From, To  PFAddr
	// Ports is the destination port condition (to ... port ...); empty
	// means any port.
	Ports []PFPort
}

// PFAddr is a from or to address of a pf rule.
type PFAddr struct {
	Any    bool
	Not    bool
	Prefix netip.Prefix // valid for an address or network
	Table  string       // <NAME>: a table whose members pfctl -sr does not show
	Other  string       // what else it was ((en0), self, no-route, ...): not checked here
}

// PFPort is one port condition: Op is "=", "!=", "<", ">", "<=", ">=",
// ":" (Lo to Hi inclusive), "><" (strictly between) or "<>" (outside).
type PFPort struct {
	Op     string
	Lo, Hi uint16
	// Name is the service name pfctl printed ("port = ssh": pfctl names
	// ports from /etc/services), kept when Lo came from it. Op "?" is a
	// name not in pfServices: which port it is stays unknown.
	Name string
}

// pfServices are the names macOS's /etc/services gives the ports a pf rule
// most likely names; pfctl -sr prints a port by its name when it has one
// ("pass in quick on re0 proto tcp from any to any port = ssh", recorded
// in pfctl listings such as the FreeBSD pf notes quoted in SOURCES.txt).
var pfServices = map[string]uint16{
	"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80,
	"www": 80, "kerberos": 88, "pop3": 110, "sunrpc": 111, "auth": 113, "ntp": 123,
	"netbios-ssn": 139, "imap": 143, "snmp": 161, "bgp": 179, "ldap": 389, "https": 443,
	"microsoft-ds": 445, "submission": 587, "ldaps": 636, "domain-s": 853, "rsync": 873,
	"imaps": 993, "pop3s": 995, "mysql": 3306, "ms-wbt-server": 3389, "postgresql": 5432,
	"http-alt": 8080,
}

// Match reports whether port meets the condition.
func (p PFPort) Match(port uint16) bool {
	switch p.Op {
	case "=":
		return port == p.Lo
	case "!=":
		return port != p.Lo
	case "<":
		return port < p.Lo
	case ">":
		return port > p.Lo
	case "<=":
		return port <= p.Lo
	case ">=":
		return port >= p.Lo
	case ":":
		return port >= p.Lo && port <= p.Hi
	case "><":
		return port > p.Lo && port < p.Hi
	case "<>":
		return port < p.Lo || port > p.Hi
	}
	return false
}

// ParsePfctl reads pfctl -sr output. Lines it cannot read as a rule are
// an error naming the line; rules of kinds that do not filter (scrub,
// anchor, nat-anchor, ...) are kept with their Action.
func ParsePfctl(r io.Reader) ([]PFRule, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var rules []PFRule
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") || strings.HasPrefix(text, "No ALTQ") || strings.HasPrefix(text, "ALTQ") {
			continue
		}
		rule, err := parsePFRule(text)
		if err != nil {
			return nil, fmt.Errorf("%w: pfctl -sr line %d: %v: %q", ErrSyntax, line, err, text)
		}
		rule.Line, rule.Text = line, text
		rules = append(rules, rule)
	}
	return rules, sc.Err()
}

// pfTokens splits a rule into words, keeping { ... } lists as one word
// and splitting "!" from what follows it.
func pfTokens(s string) ([]string, error) {
	var out []string
	for s != "" {
		s = strings.TrimLeft(s, " \t")
		switch {
		case s == "":
		case s[0] == '{':
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed {")
			}
			out = append(out, s[:end+1])
			s = s[end+1:]
		case s[0] == '"':
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unclosed quote")
			}
			out = append(out, s[:end+2])
			s = s[end+2:]
		case s[0] == '!' && !strings.HasPrefix(s, "!="):
			out = append(out, "!")
			s = s[1:]
		default:
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			out = append(out, s[:end])
			s = s[end:]
		}
	}
	return out, nil
}

func parsePFRule(text string) (PFRule, error) {
	tok, err := pfTokens(text)
	if err != nil {
		return PFRule{}, err
	}
	r := PFRule{Action: tok[0], From: PFAddr{Any: true}, To: PFAddr{Any: true}}
	if r.Action != "pass" && r.Action != "block" {
		return r, nil // scrub, anchor, nat, rdr, match, ...: not a verdict
	}
	i := 1
	for i < len(tok) {
		t := tok[i]
		i++
		switch t {
		case "drop":
		case "return", "return-rst", "return-icmp", "return-icmp6":
			r.Return = true
		case "in", "out":
			r.Direction = t
		case "quick":
			r.Quick = true
		case "log", "all":
		case "on":
			if i >= len(tok) {
				return r, fmt.Errorf("on without an interface")
			}
			r.Interface = tok[i]
			i++
		case "inet", "inet6":
			r.Family = t
		case "proto":
			if i >= len(tok) {
				return r, fmt.Errorf("proto without a protocol")
			}
			r.Proto = tok[i]
			i++
		case "from", "to":
			a, ports, n, err := pfHost(tok[i:])
			if err != nil {
				return r, fmt.Errorf("%s: %v", t, err)
			}
			i += n
			if t == "from" {
				r.From = a // source ports do not decide a connection's first packet here
			} else {
				r.To, r.Ports = a, ports
			}
		default:
			// flags S/SA, keep state, label "...", user, group, ...: the
			// rest of the rule does not change which connections it takes.
			i = len(tok)
		}
	}
	return r, nil
}

// pfHost reads an address ("any", "!", a network, "<table>", "(en0)",
// "self") and an optional "port ..." after it, returning how many words
// it used.
func pfHost(tok []string) (PFAddr, []PFPort, int, error) {
	var a PFAddr
	i := 0
	if i < len(tok) && tok[i] == "!" {
		a.Not = true
		i++
	}
	if i >= len(tok) {
		return a, nil, i, fmt.Errorf("no address")
	}
	switch t := tok[i]; {
	case t == "any":
		a.Any = !a.Not
	case strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">"):
		a.Table = t[1 : len(t)-1]
	case strings.HasPrefix(t, "{"):
		a.Other = t // an address list: pfctl -sr expands them, so rare
	default:
		if p, err := netip.ParsePrefix(t); err == nil {
			a.Prefix = p
		} else if ad, err := netip.ParseAddr(t); err == nil {
			a.Prefix = netip.PrefixFrom(ad, ad.BitLen())
		} else {
			a.Other = t // (en0), self, urpf-failed, no-route, a name
		}
	}
	i++
	if i < len(tok) && tok[i] == "port" {
		ports, n, err := pfPorts(tok[i+1:])
		if err != nil {
			return a, nil, i, err
		}
		return a, ports, i + 1 + n, nil
	}
	return a, nil, i, nil
}

// pfPorts reads a port condition: "= 22", "!= 22", "8000:8010",
// "1024 >< 2048", "{ 80 443 }" (any of them), or a bare number.
func pfPorts(tok []string) ([]PFPort, int, error) {
	if len(tok) == 0 {
		return nil, 0, fmt.Errorf("port without a value")
	}
	num := func(s string) (uint16, error) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("port %q", s)
		}
		return uint16(n), nil
	}
	// one is a single port, by number or by service name.
	one := func(op, s string) PFPort {
		if n, err := num(s); err == nil {
			return PFPort{Op: op, Lo: n}
		}
		if n, ok := pfServices[s]; ok {
			return PFPort{Op: op, Lo: n, Name: s}
		}
		return PFPort{Op: "?", Name: s}
	}
	isName := func(s string) bool {
		return s != "" && strings.IndexFunc(s, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
		}) < 0 && !(s[0] >= '0' && s[0] <= '9')
	}
	t := tok[0]
	switch {
	case strings.HasPrefix(t, "{"):
		var out []PFPort
		for _, f := range strings.Fields(strings.Trim(t, "{}")) {
			f = strings.TrimSuffix(f, ",")
			if f == "" {
				continue
			}
			p, _, err := pfPorts([]string{f})
			if err != nil {
				return nil, 0, err
			}
			out = append(out, p...)
		}
		if len(out) == 0 {
			return nil, 0, fmt.Errorf("empty port list")
		}
		return out, 1, nil
	case slices.Contains([]string{"=", "!=", "<", ">", "<=", ">="}, t):
		if len(tok) < 2 {
			return nil, 0, fmt.Errorf("port %s without a number", t)
		}
		if isName(tok[1]) {
			p := one(t, tok[1])
			if p.Op == "?" && t != "=" {
				return nil, 0, fmt.Errorf("port %s %q: a service name not known here", t, tok[1])
			}
			return []PFPort{p}, 2, nil
		}
		n, err := num(tok[1])
		return []PFPort{{Op: t, Lo: n}}, 2, err
	case strings.Contains(t, ":"):
		lo, hi, _ := strings.Cut(t, ":")
		l, err := num(lo)
		if err != nil {
			return nil, 0, err
		}
		h, err := num(hi)
		return []PFPort{{Op: ":", Lo: l, Hi: h}}, 1, err
	}
	if isName(t) {
		return []PFPort{one("=", t)}, 1, nil
	}
	n, err := num(t)
	if err != nil {
		return nil, 0, err
	}
	if len(tok) >= 3 && (tok[1] == "><" || tok[1] == "<>") {
		h, err := num(tok[2])
		return []PFPort{{Op: tok[1], Lo: n, Hi: h}}, 3, err
	}
	return []PFPort{{Op: "=", Lo: n}}, 1, nil
}

// PFDecision is what pf does with a connection's first packet.
type PFDecision struct {
	// Rule decided; nil when no rule matched, and pf passes the packet.
	Rule *PFRule
	// Block is set when the packet is blocked; Rule.Return says whether
	// the sender is answered.
	Block bool
	// Unchecked are the conditions of rules that could have decided
	// instead, which pfctl's output does not let us check (a table's
	// members, an interface's addresses): with any, the decision is not
	// certain.
	Unchecked []string
}

// DecidePF follows pf's order for an incoming TCP connection to dst: the
// last matching rule decides, unless a quick one matched before it.
func DecidePF(rules []PFRule, dst netip.AddrPort) PFDecision {
	var d PFDecision
	for i := range rules {
		r := &rules[i]
		if r.Action != "pass" && r.Action != "block" {
			continue
		}
		sure, ok := r.matchIn(dst)
		if !ok {
			continue
		}
		if len(sure) > 0 {
			// It may match: note it, and let the rest decide as if not.
			d.Unchecked = append(d.Unchecked, fmt.Sprintf("line %d (%s): %s", r.Line, r.Text, strings.Join(sure, ", ")))
			continue
		}
		d.Rule, d.Block = r, r.Action == "block"
		if r.Quick {
			break
		}
	}
	return d
}

// matchIn reports whether r may take an incoming TCP packet to dst, and
// the conditions it could not check (none: it does).
func (r *PFRule) matchIn(dst netip.AddrPort) (unchecked []string, ok bool) {
	if r.Direction == "out" || (r.Proto != "" && r.Proto != "tcp") {
		return nil, false
	}
	a := dst.Addr().Unmap()
	if (r.Family == "inet" && !a.Is4()) || (r.Family == "inet6" && a.Is4()) {
		return nil, false
	}
	if len(r.Ports) > 0 && !slices.ContainsFunc(r.Ports, func(p PFPort) bool { return p.Match(dst.Port()) }) {
		i := slices.IndexFunc(r.Ports, func(p PFPort) bool { return p.Op == "?" })
		if i < 0 {
			return nil, false
		}
		unchecked = append(unchecked, "port "+r.Ports[i].Name+" (a service name not known here)")
	}
	if r.Interface != "" {
		unchecked = append(unchecked, "on "+r.Interface)
	}
	for _, h := range []struct {
		side string
		a    PFAddr
	}{{"from", r.From}, {"to", r.To}} {
		switch {
		case h.a.Any:
		case h.a.Table != "":
			unchecked = append(unchecked, h.side+" table <"+h.a.Table+">")
		case h.a.Prefix.IsValid() && h.side == "to":
			if h.a.Prefix.Contains(a) == h.a.Not {
				return nil, false
			}
		case h.a.Prefix.IsValid():
			unchecked = append(unchecked, h.side+" "+h.a.Prefix.String()+" (the client's address)")
		case h.a.Other != "":
			unchecked = append(unchecked, h.side+" "+h.a.Other)
		}
	}
	return unchecked, true
}

// AppFirewall is the state of macOS's Application Firewall as
// socketfilterfw --getglobalstate --getblockall --getstealthmode reports
// it; a nil field was not in the output.
type AppFirewall struct {
	Enabled, BlockAll, Stealth *bool
}

// ParseSocketfilterfw reads socketfilterfw's answers. Their wording moved
// between releases ("Firewall is enabled. (State = 1)", "Block all
// DISABLED!" / "Firewall has block all state set to disabled.", "Stealth
// mode enabled" / "Firewall stealth mode is on"); each is matched by what
// it is about and its on/off word.
func ParseSocketfilterfw(r io.Reader) (AppFirewall, error) {
	var fw AppFirewall
	b, err := io.ReadAll(io.LimitReader(r, 1<<16))
	if err != nil {
		return fw, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		l := strings.ToLower(strings.TrimSpace(line))
		if l == "" {
			continue
		}
		// "(State = N)" ends the global state line: 0 off, 1 on, 2 on and
		// blocking all incoming but essential services. State 2's sentence
		// says neither enabled nor disabled ("Firewall is blocking all
		// non-essential incoming connections. (State = 2)", recorded on
		// macOS 15), so the number decides.
		if _, n, ok := strings.Cut(l, "(state = "); ok {
			n, _, _ = strings.Cut(n, ")")
			st, err := strconv.Atoi(n)
			if err != nil || st < 0 || st > 2 {
				return AppFirewall{}, fmt.Errorf("%w: socketfilterfw: %q: state %q", ErrSyntax, line, n)
			}
			on := st > 0
			fw.Enabled = &on
			if st == 2 || strings.Contains(l, "blocking all") {
				all := true
				fw.BlockAll = &all
			}
			continue
		}
		on := strings.Contains(l, "enabled") || strings.HasSuffix(strings.TrimRight(l, ".!"), " on") || strings.Contains(l, "state = 1")
		off := strings.Contains(l, "disabled") || strings.HasSuffix(strings.TrimRight(l, ".!"), " off") || strings.Contains(l, "state = 0")
		if on == off {
			return fw, fmt.Errorf("%w: socketfilterfw: %q says neither on nor off", ErrSyntax, line)
		}
		v := on
		switch {
		case strings.Contains(l, "block all"):
			fw.BlockAll = &v
		case strings.Contains(l, "stealth"):
			fw.Stealth = &v
		case strings.Contains(l, "firewall is"), strings.Contains(l, "state ="):
			fw.Enabled = &v
		default:
			return fw, fmt.Errorf("%w: socketfilterfw: %q", ErrSyntax, line)
		}
	}
	return fw, nil
}
