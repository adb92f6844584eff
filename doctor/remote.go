package doctor

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// Narrow returns only what ev shows about a TCP connection from src to dst:
// the listeners on dst's port and on ports that look like a slip of it, and
// the firewall rules that decide that connection on the way in. An agent
// answers RemoteEvidence with it, so it never hands out its whole socket
// table or ruleset.
//
// Rules cross the wire without their parsed conditions, and the asker
// evaluates them again: kept rules are exactly those that match, so they
// match again there. Rules that match only if conditions the doctor cannot
// check hold (interfaces, conntrack state, ...) become notes instead.
func (ev HostEvidence) Narrow(src, dst netip.AddrPort) HostEvidence {
	out := HostEvidence{Host: ev.Host, Addresses: ev.Addresses, Firewall: ev.Firewall, Notes: ev.Notes}
	if ev.Listening != nil { // nil means the sockets could not be listed
		out.Listening = []sockets.Socket{}
	}
	for _, sk := range ev.Listening {
		if p := sk.Local.Port(); p == dst.Port() || similarPort(p, dst.Port()) {
			out.Listening = append(out.Listening, sk)
		}
	}
	for _, m := range Evaluate(ev.Rules, Packet{Direction: "in", Src: src, Dst: dst}) {
		if m.Exact {
			out.Rules = append(out.Rules, m.Rule)
			continue
		}
		out.Notes = append(out.Notes, fmt.Sprintf("%s %s/%s: %q %s the connection if %s",
			m.Rule.Source, m.Rule.Table, m.Rule.Chain, m.Rule.Text, m.Rule.Verdict+"s", strings.Join(m.Unchecked, ", ")))
	}
	return out
}

// Explain names what a host's evidence shows about a connection from src to
// dst that ended in class, as the ladder's sockets and firewall checks do:
// a hub uses it to explain a pair an agent reported, with the target's
// evidence. detail says what was looked at, also when nothing was found.
func Explain(ev HostEvidence, src, dst netip.AddrPort, class probe.Class) (detail string, findings []Finding) {
	detail, findings = analyzeSockets(&ev, dst, class)
	for _, m := range Evaluate(ev.Rules, Packet{Direction: "in", Src: src, Dst: dst}) {
		if f, ok := firewallFinding(m, "in", dst, class, ev.Host); ok {
			findings = append(findings, f)
		}
	}
	return detail, findings
}
