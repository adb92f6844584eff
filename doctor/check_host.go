package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// HostCheck gathers the target host's evidence (sockets, firewall) for each
// address: from this host when the address is one of its own, else from
// Options.Remote, asked about every other address at once.
var HostCheck = CheckFunc{
	CheckName: "host",
	ReadsFrom: []string{"dns"}, // the addresses
	Fn:        checkHost,
}

func checkHost(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	var ev HostEvidence
	s.Options.enter(func() error {
		src := s.Options.socketSource()
		ev = gather(ctx, src, s.Options.firewallSource(), nearPort(s.Target.Port))
		// Every address passes this host's own rules on the way out: a
		// ClusterIP or a published port is translated here.
		for _, a := range s.Addrs {
			ev.walkFor(netip.Addr{}, netip.AddrPortFrom(a, s.Target.Port), true)
		}
		ev.listTranslated(ctx, src, nearPort(s.Target.Port))
		return nil
	})
	s.Client = &ev
	n := len(s.Addrs)
	s.Local, s.Hosts, s.Agents = make([]bool, n), make([]*HostEvidence, n), make([]*AgentError, n)
	var local, remote, here []string
	var others []int
	for i, a := range s.Addrs {
		if s.Local[i] = ev.isLocal(a); s.Local[i] {
			s.Hosts[i] = &ev
			local = append(local, a.String())
		} else if ev.decidesOut(s.addrPort(i)) {
			// This host's rules send it elsewhere or refuse it: the host
			// that has the address never sees the connection as dialled.
			s.Hosts[i] = &ev
			here = append(here, a.String())
		} else {
			others = append(others, i)
			remote = append(remote, a.String())
		}
	}
	seen := fmt.Sprintf("%s on port %d or look-alike ports", count(len(ev.Listening), "listening socket"), s.Target.Port)
	if ev.Firewall {
		seen += ", " + count(len(ev.Rules), "firewall rule")
	} else {
		seen += ", no firewall rules (see firewall)"
	}
	res := CheckResult{Status: Info}
	var parts []string
	if len(local) > 0 {
		parts = append(parts, fmt.Sprintf("%s is this host: looked at its %s", strings.Join(local, ", "), seen))
	}
	if len(here) > 0 {
		parts = append(parts, fmt.Sprintf("%s is another address, but this host's own rules translate or refuse the connection (see nat): looked at its %s", strings.Join(here, ", "), seen))
	}
	switch {
	case len(others) == 0:
	case s.Options.Remote == nil:
		parts = append(parts, fmt.Sprintf("%s %s another host: its sockets and firewall cannot be seen from here (run reach check there, or ask its agent: --agent or --hub)", strings.Join(remote, ", "), map[bool]string{true: "is", false: "are"}[len(remote) == 1]))
		if len(local) == 0 {
			res.Status = Skip
			parts = append(parts, "looked at this host's "+seen)
		}
	default:
		askAgents(ctx, s, others)
		answered := len(local) > 0
		for _, i := range others {
			if h := s.Hosts[i]; h != nil {
				answered = true
				// An agent sends only what concerns the connection (Narrow).
				parts = append(parts, fmt.Sprintf("%s answered for %s: %s on port %d or look-alike ports, %s that match", h.Host, s.Addrs[i], count(len(h.Listening), "listening socket"), s.Target.Port, count(len(h.Rules), "firewall rule")))
				continue
			}
			ae := s.Agents[i]
			if ae.Failure != AgentNone {
				res.Status = Error
			}
			parts = append(parts, fmt.Sprintf("no evidence for %s: %v", s.Addrs[i], ae))
		}
		if !answered && res.Status != Error {
			res.Status = Skip
		}
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}
