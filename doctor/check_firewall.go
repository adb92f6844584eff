package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
)

// FirewallCheck evaluates this host's outgoing rules and the target host's
// incoming rules for the connection and quotes the ones that decide it.
var FirewallCheck = CheckFunc{
	CheckName: "firewall",
	ReadsFrom: []string{"dns", "tcp", "route", "host"}, // addresses; classes, sources; devices; rules
	Fn:        checkFirewall,
}

func checkFirewall(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	if s.Client != nil && s.Client.foreign != nil {
		return checkForeign(s)
	}
	if s.Client == nil || (!s.Client.Firewall && !slices.ContainsFunc(s.Hosts, func(h *HostEvidence) bool { return h != nil && h.Firewall })) {
		why := "no host evidence"
		if s.Client != nil {
			why = strings.Join(s.Client.Notes, "; ")
		}
		return CheckResult{Status: Skip, Detail: "could not read this host's firewall: " + why}
	}
	res := CheckResult{Status: Pass}
	var parts []string
	for i := range s.Addrs {
		ap := s.addrPort(i)
		class := s.Primary(i)
		var src netip.AddrPort
		if len(s.Probes) > i && len(s.Probes[i]) > 0 {
			src = s.Probes[i][0].Local
		}
		if !src.IsValid() && len(s.Routes) > i && s.Routes[i].Route.Src.IsValid() {
			src = netip.AddrPortFrom(s.Routes[i].Route.Src, 0)
		}
		var matches []firewall.Hit
		sets := []struct {
			ev  *HostEvidence
			dir string
		}{{s.Client, "out"}}
		if h := s.host(i); h != nil {
			sets = append(sets, struct {
				ev  *HostEvidence
				dir string
			}{h, "in"})
		}
		// The interfaces the SYN passes, where this host knows them: it
		// leaves by the route's device, and a target on this host (a route
		// over lo) also arrives on lo.
		var dev string
		if len(s.Routes) > i {
			dev = s.Routes[i].Dev
		}
		// This host's rules, read here; those of the target's host are
		// counted once, and an agent sends only the rules that match.
		count := len(s.Client.Rules)
		for _, set := range sets {
			p := firewall.Packet{Direction: set.dir, Src: src, Dst: ap, Out: dev}
			if set.dir == "in" && dev == "lo" {
				p.Out, p.In = "", "lo"
			}
			for _, m := range firewall.Evaluate(set.ev.Rules, p) {
				matches = append(matches, m)
				if f, ok := firewallFinding(m, set.dir, ap, class, set.ev.Host); ok {
					f.Addr = s.label(i)
					res.Findings = append(res.Findings, f)
				}
			}
		}
		if len(matches) == 0 {
			d := fmt.Sprintf("no rule matches tcp to %s (%d rules read", ap, count)
			switch h := s.host(i); {
			case h == nil:
				d += " on this host; the target's firewall cannot be seen from here"
			case h != s.Client && h.Firewall:
				d += " on this host; " + h.Host + " read its own and sent none that match"
			case h != s.Client:
				d += " on this host; " + h.Host + " could not read its own"
			}
			parts = append(parts, d+")")
			continue
		}
		var quoted []string
		for _, m := range matches {
			q := fmt.Sprintf("%s %s/%s: %s", m.Rule.Source, m.Rule.Table, m.Rule.Chain, m.Rule.Text)
			if !m.Exact {
				q += " (if " + strings.Join(m.Unchecked, ", ") + ")"
			}
			quoted = append(quoted, q)
		}
		parts = append(parts, fmt.Sprintf("tcp to %s meets: %s", ap, strings.Join(quoted, "; ")))
	}
	if len(res.Findings) > 0 {
		res.Status = Fail
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}

// firewallFinding turns a matching rule into a finding when what the rule
// does agrees with what the probe saw.
func firewallFinding(m firewall.Hit, dir string, ap netip.AddrPort, class probe.Class, host string) (Finding, bool) {
	r := m.Rule
	quote := fmt.Sprintf("%s, table %s, chain %s: %s", r.Source, r.Table, r.Chain, r.Text)
	conf := Confirmed
	if !m.Exact {
		conf = Possible
		quote += " (matches if " + strings.Join(m.Unchecked, ", ") + ")"
	}
	where := "on the target host"
	switch {
	case dir == "out":
		where = "on this host, for outgoing packets"
	case host == "this host":
		where = "on this host"
	default:
		quote += " (reported by " + host + ")"
	}
	fix := fmt.Sprintf("allow tcp port %d %s: delete or narrow that rule, or add an accept rule before it", ap.Port(), where)
	if r.Policy {
		cmd := fmt.Sprintf("nft insert rule %s %s tcp dport %d accept", r.Table, r.Chain, ap.Port())
		if r.Source == "iptables" {
			cmd = fmt.Sprintf("iptables -t %s -I %s -p tcp --dport %d -j ACCEPT", r.Table, r.Chain, ap.Port())
		}
		fix = fmt.Sprintf("accept tcp port %d before the chain's policy applies, e.g. %s (and make it persistent)", ap.Port(), cmd)
	}
	switch {
	case r.Verdict == "drop" && dir == "out" && class == probe.LocalError:
		return Finding{Cause: LocalError, Confidence: conf, Issue: "This host's firewall drops outgoing connections to " + ap.String(),
			Evidence: quote + "; the kernel failed connect with EPERM", Fix: fix}, true
	case r.Verdict == "drop" && class == probe.Timeout:
		return Finding{Cause: FirewallDrop, Confidence: conf, Issue: "A firewall drops the connection " + where,
			Evidence: quote, Fix: fix}, true
	case r.Verdict == "reject" && (class == probe.Refused || class == probe.HostUnreachable || class == probe.LocalError):
		return Finding{Cause: FirewallReject, Confidence: conf, Issue: "A firewall rejects the connection " + where,
			Evidence: rejectQuote(quote, r), Fix: fix}, true
	}
	return Finding{}, false
}

// rejectQuote adds how a rule rejects when its text does not say.
func rejectQuote(quote string, r firewall.Rule) string {
	if r.RejectWith == "" || strings.Contains(r.Text, r.RejectWith) {
		return quote
	}
	return quote + " (reject with " + r.RejectWith + ")"
}
