package fault

import (
	"bufio"
	"bytes"
	"net/netip"
	"strconv"
	"strings"
)

// iptChain is reach's own chain in the filter table; iptJump is the
// comment of the one rule of ours in INPUT, the jump to it.
const (
	iptChain = "REACH-FAULT"
	iptJump  = markerPrefix + " jump"
)

// iptState is what iptables-save -t filter says of reach's chain.
type iptState struct {
	chain bool   // REACH-FAULT exists
	jump  bool   // INPUT jumps to it (our rule)
	rules []rule // its rules, numbered from 1
}

// parseIptablesSave reads the filter table of iptables-save (or
// ip6tables-save) output, for the tool named.
func parseIptablesSave(out []byte, tool string) iptState {
	var st iptState
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	table := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case table != "filter":
		case line == ":"+iptChain || strings.HasPrefix(line, ":"+iptChain+" "):
			st.chain = true
		case strings.HasPrefix(line, "-A INPUT ") && strings.HasSuffix(line, " -j "+iptChain) &&
			iptComment(line) == iptJump:
			st.jump = true
		case strings.HasPrefix(line, "-A "+iptChain+" "):
			r := rule{Tool: tool, Handle: len(st.rules) + 1, Comment: iptComment(line)}
			r.Source = iptSource(line)
			st.rules = append(st.rules, r)
		}
	}
	return st
}

// iptComment returns the argument of --comment in a saved rule: quoted
// (with \" and \\ escapes) when it holds spaces, bare otherwise.
func iptComment(line string) string {
	_, rest, ok := strings.Cut(line, " --comment ")
	if !ok {
		return ""
	}
	if !strings.HasPrefix(rest, `"`) {
		s, _, _ := strings.Cut(rest, " ")
		return s
	}
	var b strings.Builder
	for i := 1; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '\\' && i+1 < len(rest):
			i++
			b.WriteByte(rest[i])
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return "" // unterminated: not a comment reach wrote
}

// iptSource reads -s ADDR[/LEN] of a saved rule; the zero Prefix if none.
func iptSource(line string) netip.Prefix {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] != "-s" {
			continue
		}
		if p, err := netip.ParsePrefix(f[i+1]); err == nil {
			return p
		}
		if a, err := netip.ParseAddr(f[i+1]); err == nil {
			return netip.PrefixFrom(a, a.BitLen())
		}
	}
	return netip.Prefix{}
}

// iptRuleArgs is the rule spec (after -A REACH-FAULT) of one fault for
// iptables (v6 false) or ip6tables.
func iptRuleArgs(m Marker, src netip.Prefix, v6 bool) []string {
	var a []string
	if src.IsValid() {
		a = append(a, "-s", src.String())
	}
	a = append(a, "-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(int(m.Port)), "--tcp-flags", "SYN,ACK", "SYN")
	if n := hits(m.Probability); n < probScale {
		a = append(a, "-m", "statistic", "--mode", "random", "--probability",
			strconv.FormatFloat(float64(n)/probScale, 'f', -1, 64))
	}
	a = append(a, "-m", "comment", "--comment", m.String(), "-j")
	switch m.Mode {
	case Refuse:
		a = append(a, "REJECT", "--reject-with", "tcp-reset")
	case Drop:
		a = append(a, "DROP")
	case RejectICMP:
		if v6 {
			a = append(a, "REJECT", "--reject-with", "icmp6-port-unreachable")
		} else {
			a = append(a, "REJECT", "--reject-with", "icmp-port-unreachable")
		}
	}
	return a
}

// iptJumpArgs is the spec of our jump from INPUT (after -I INPUT 1 or -D INPUT).
func iptJumpArgs() []string {
	return []string{"-m", "comment", "--comment", iptJump, "-j", iptChain}
}
