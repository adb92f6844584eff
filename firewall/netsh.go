package firewall

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// This file reads the Windows Firewall as netsh prints it:
// "netsh advfirewall show allprofiles" (each profile's state and default
// inbound policy) and "netsh advfirewall firewall show rule name=all
// verbose" (every rule). netsh rather than PowerShell's
// Get-NetFirewallRule | Get-NetFirewallPortFilter: netsh is on every
// Windows and answers in a second, where the PowerShell pipeline takes
// tens of seconds on a machine with a few thousand rules (it asks WMI per
// rule); PowerShell's objects are not localised and netsh's labels are,
// so the labels of each language netsh speaks are mapped to one set here
// (English and German so far; another language's output fails with
// ErrSyntax naming the line, never a guess).

// WinProfile is one profile of "netsh advfirewall show allprofiles".
type WinProfile struct {
	Name    string // "domain", "private" or "public"
	Enabled bool
	// BlockInbound is set when connections no rule allows are blocked
	// (Firewall Policy BlockInbound or BlockInboundAlways).
	BlockInbound bool
	// BlockAlways is BlockInboundAlways: even allowed ones are blocked.
	BlockAlways bool
	Policy      string // the policy as printed, e.g. "BlockInbound,AllowOutbound"
}

// WinRule is one rule of "netsh advfirewall firewall show rule verbose".
type WinRule struct {
	Line      int // where its name is in the output
	Name      string
	Enabled   bool
	Inbound   bool
	Profiles  []string // "domain", "private", "public"; all three for Any
	Protocol  string   // "tcp", "udp", "any", or a number
	LocalPort string   // as printed: "Any", "8000", "8000-8010,8443", "RPC", ...
	Program   string   // "" for any program
	Allow     bool     // Action Allow (Bypass too); false for Block
}

// netshLabels maps each language's label to the English one.
var netshLabels = map[string]string{
	// German
	"Regelname": "Rule Name", "Aktiviert": "Enabled", "Richtung": "Direction", "Profile": "Profiles",
	"Protokoll": "Protocol", "Lokaler Port": "LocalPort", "Programm": "Program", "Aktion": "Action",
	"Status": "State", "Firewallrichtlinie": "Firewall Policy",
}

// netshValues maps each language's values to the English ones.
var netshValues = map[string]string{
	"ja": "yes", "nein": "no", "eingehend": "in", "ausgehend": "out", "zulassen": "allow",
	"blockieren": "block", "umgehen": "bypass", "beliebig": "any", "ein": "on", "aus": "off",
	"domäne": "domain", "privat": "private", "öffentlich": "public",
}

// netshProfileHeads maps each language's profile heading to a profile.
var netshProfileHeads = map[string]string{
	"Domain Profile Settings:": "domain", "Private Profile Settings:": "private", "Public Profile Settings:": "public",
	"Domänenprofil-Einstellungen:": "domain", "Privates Profil-Einstellungen:": "private",
	"Öffentliches Profil-Einstellungen:": "public",
}

func netshValue(v string) string {
	v = strings.TrimSpace(v)
	if e, ok := netshValues[strings.ToLower(v)]; ok {
		return e
	}
	return strings.ToLower(v)
}

// netshField splits "Label:   value" (rules) or "Label   value" (profiles).
func netshField(line string, colon bool) (label, value string, ok bool) {
	if colon {
		l, v, ok := strings.Cut(line, ":")
		if !ok {
			return "", "", false
		}
		l = strings.TrimSpace(l)
		if e, ok := netshLabels[l]; ok {
			l = e
		}
		return l, strings.TrimSpace(v), true
	}
	// Profile lines: the label, then a run of two or more spaces.
	i := strings.Index(line, "  ")
	if i < 0 {
		return strings.TrimSpace(line), "", true
	}
	l := strings.TrimSpace(line[:i])
	if e, ok := netshLabels[l]; ok {
		l = e
	}
	return l, strings.TrimSpace(line[i:]), true
}

// ParseNetshProfiles reads "netsh advfirewall show allprofiles".
func ParseNetshProfiles(r io.Reader) ([]WinProfile, error) {
	sc := bufio.NewScanner(r)
	var out []WinProfile
	var cur *WinProfile
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if name, ok := netshProfileHeads[text]; ok {
			out = append(out, WinProfile{Name: name})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || text == "" || strings.HasPrefix(text, "---") {
			continue
		}
		l, v, _ := netshField(text, false)
		switch l {
		case "State":
			switch netshValue(v) {
			case "on":
				cur.Enabled = true
			case "off":
			default:
				return nil, fmt.Errorf("%w: netsh line %d: state %q", ErrSyntax, line, v)
			}
		case "Firewall Policy":
			cur.Policy = v
			in, _, _ := strings.Cut(v, ",")
			cur.BlockInbound = strings.HasPrefix(in, "BlockInbound")
			cur.BlockAlways = in == "BlockInboundAlways"
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: netsh: no profile heading (a language not mapped?)", ErrSyntax)
	}
	return out, nil
}

// ParseNetshRules reads "netsh advfirewall firewall show rule name=all
// verbose".
func ParseNetshRules(r io.Reader) ([]WinRule, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []WinRule
	var cur *WinRule
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "---") || text == "Ok." || text == "OK." {
			continue
		}
		l, v, ok := netshField(text, true)
		if !ok {
			if cur == nil {
				return nil, fmt.Errorf("%w: netsh line %d: %q", ErrSyntax, line, text)
			}
			continue // a wrapped description
		}
		if l == "Rule Name" {
			out = append(out, WinRule{Line: line, Name: v, Protocol: "any", LocalPort: "Any",
				Profiles: []string{"domain", "private", "public"}})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%w: netsh line %d: %q before any rule name (a language not mapped?)", ErrSyntax, line, text)
		}
		switch l {
		case "Enabled":
			cur.Enabled = netshValue(v) == "yes"
		case "Direction":
			cur.Inbound = netshValue(v) == "in"
		case "Profiles":
			if p := netshValue(v); p != "any" {
				cur.Profiles = nil
				for _, f := range strings.Split(v, ",") {
					cur.Profiles = append(cur.Profiles, netshValue(f))
				}
			}
		case "Protocol":
			cur.Protocol = netshValue(v)
		case "LocalPort":
			cur.LocalPort = v
		case "Program":
			if netshValue(v) != "any" {
				cur.Program = v
			}
		case "Action":
			switch netshValue(v) {
			case "allow", "bypass":
				cur.Allow = true
			case "block":
			default:
				return nil, fmt.Errorf("%w: netsh line %d: action %q", ErrSyntax, line, v)
			}
		}
	}
	return out, sc.Err()
}

// LocalPortMatch reports whether the rule's LocalPort takes port:
// "Any", numbers, ranges "8000-8010", comma-separated. A keyword (RPC,
// RPC-EPMap, IPHTTPS, Edge Traversal, ...) is not decided here: known is
// false.
func (r WinRule) LocalPortMatch(port uint16) (match, known bool) {
	if netshValue(r.LocalPort) == "any" {
		return true, true
	}
	for _, f := range strings.Split(r.LocalPort, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return false, false
		}
		h := l
		if isRange {
			if h, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return false, false
			}
		}
		if uint64(port) >= l && uint64(port) <= h {
			return true, true
		}
	}
	return false, true
}

// WinDecision is what the Windows Firewall does with an incoming TCP
// connection to a port, in one profile.
type WinDecision struct {
	Profile WinProfile
	Block   bool
	// Rule decided (a block rule, or the allow rule that let it in); nil
	// when the profile's default did.
	Rule *WinRule
	// Unchecked are rules that could have decided but name a program or a
	// port keyword this does not check: with any, the decision is not certain.
	Unchecked []string
}

// DecideWindows decides an incoming TCP connection to port in profile p:
// a firewall that is off lets it in; an enabled block rule wins over any
// allow rule; else an allow rule lets it in, or the profile's default
// inbound policy decides.
func DecideWindows(p WinProfile, rules []WinRule, port uint16) WinDecision {
	d := WinDecision{Profile: p}
	if !p.Enabled {
		return d
	}
	var allow, block *WinRule
	for i := range rules {
		r := &rules[i]
		if !r.Enabled || !r.Inbound || !slices.Contains(r.Profiles, p.Name) ||
			(r.Protocol != "tcp" && r.Protocol != "any" && r.Protocol != "6") {
			continue
		}
		m, known := r.LocalPortMatch(port)
		switch {
		case !known:
			d.Unchecked = append(d.Unchecked, fmt.Sprintf("%q (local port %s)", r.Name, r.LocalPort))
			continue
		case !m:
			continue
		case r.Program != "":
			// Whether the listener is that program needs the socket's owner.
			d.Unchecked = append(d.Unchecked, fmt.Sprintf("%q (program %s)", r.Name, r.Program))
			continue
		}
		if r.Allow && allow == nil {
			allow = r
		} else if !r.Allow && block == nil {
			block = r
		}
	}
	switch {
	case block != nil:
		d.Block, d.Rule = true, block
	case p.BlockAlways:
		d.Block = true
	case allow != nil:
		d.Rule = allow
	default:
		d.Block = p.BlockInbound
	}
	return d
}
