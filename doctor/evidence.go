package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/sockets"
)

// hostSockets reads this host's sockets with the sockets package.
type hostSockets struct{}

func (hostSockets) Listening(ctx context.Context, keep func(uint16) bool) ([]sockets.Socket, error) {
	t, err := sockets.List(ctx, sockets.Options{Ports: keep})
	return t.Sockets, err
}
func (hostSockets) Addresses() ([]netip.Prefix, error) { return sockets.Addresses() }

func (o *Options) socketSource() SocketSource {
	if o.Sockets != nil {
		return o.Sockets
	}
	return hostSockets{}
}

func (o *Options) firewallSource() FirewallSource {
	if o.Firewall != nil {
		return o.Firewall
	}
	return firewall.Commands{}
}

// Gather collects this host's evidence: addresses, every listening socket
// and firewall rules. An agent on a target host answers RemoteEvidence with it.
func Gather(ctx context.Context, src SocketSource, fw FirewallSource) HostEvidence {
	return gather(ctx, src, fw, nil)
}

// nearPort keeps port and the ports that look like a slip of it.
func nearPort(port uint16) func(uint16) bool {
	return func(p uint16) bool { return p == port || similarPort(p, port) }
}

// gather is Gather for the listening sockets whose port keep accepts.
func gather(ctx context.Context, src SocketSource, fw FirewallSource, keep func(uint16) bool) HostEvidence {
	if src == nil {
		src = hostSockets{}
	}
	if fw == nil {
		fw = firewall.Commands{}
	}
	ev := HostEvidence{Host: "this host"}
	var err error
	if ev.Addresses, err = src.Addresses(); err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("addresses: %v", err))
	}
	// Listening stays nil only when the sockets could not be listed.
	if ls, err := src.Listening(ctx, keep); err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("sockets: %v", err))
	} else {
		ev.Listening = append([]sockets.Socket{}, ls...)
	}
	if rs, err := fw.Read(ctx); err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("firewall rules: %v", err))
	} else {
		ev.Rules, ev.Firewall = rs.Rules(), true
		if rs != nil {
			ev.Notes = append(ev.Notes, rs.Notes...)
		}
	}
	return ev
}

// isLocal reports whether addr is one of ev's own addresses.
func (ev *HostEvidence) isLocal(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsUnspecified() || ev.has(addr)
}

// HostCheck gathers the target host's evidence (sockets, firewall) for each
// address: from this host when the address is one of its own, else from
// Options.Remote, asked about every other address at once.
var HostCheck = CheckFunc{"host", func(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	var ev HostEvidence
	s.Options.enter(func() error {
		ev = gather(ctx, s.Options.socketSource(), s.Options.firewallSource(), nearPort(s.Target.Port))
		return nil
	})
	s.Client = &ev
	n := len(s.Addrs)
	s.Local, s.Hosts, s.Agents = make([]bool, n), make([]*HostEvidence, n), make([]*AgentError, n)
	var local, remote []string
	var others []int
	for i, a := range s.Addrs {
		if s.Local[i] = ev.isLocal(a); s.Local[i] {
			s.Hosts[i] = &ev
			local = append(local, a.String())
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
				parts = append(parts, fmt.Sprintf("%s answered for %s: %s, %s", h.Host, s.Addrs[i], count(len(h.Listening), "listening socket"), count(len(h.Rules), "firewall rule")))
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
}}

// count says "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
