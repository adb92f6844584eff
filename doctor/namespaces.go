package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/sockets"
)

// PeerLister is a SocketSource that also lists the network namespaces wired
// to the host's own (its containers', its pods'), with their addresses and
// listening sockets. The sockets package's does (sockets.ListPeers).
// Without one the doctor cannot see past the host's own namespace, and says
// so instead of confirming that nothing listens.
type PeerLister interface {
	Peers(ctx context.Context) (sockets.Peers, error)
}

// RouteLister is a SocketSource that also lists the host's routes: the NAT
// walk needs them for rules that match the interface a packet leaves by
// (Docker's -o docker0). The sockets package's does.
type RouteLister interface {
	Routes(ctx context.Context) ([]Route, error)
}

// Route is one entry of a host's routing table: packets to Prefix leave
// by Dev.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	Dev    string       `json:"dev"`
}

func (hostSockets) Peers(ctx context.Context) (sockets.Peers, error) {
	return sockets.ListPeers(ctx, sockets.Options{})
}

func (hostSockets) Routes(ctx context.Context) ([]Route, error) {
	links, err := sys.Links(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := sys.Routes(ctx)
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Index] = l.Name
	}
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		if dev := names[r.IfIndex]; dev != "" && r.Type == "unicast" {
			out = append(out, Route{Prefix: r.Prefix, Dev: dev})
		}
	}
	return out, nil
}

// NATPath is where a host's rules send the first packet of a connection,
// as firewall.Walk follows it, in a form that crosses the wire: an agent
// walks its own rules (they cross without their conditions) for the
// connection it is asked about.
type NATPath struct {
	Dst netip.AddrPort `json:"dst"`
	// Hook is where the packet entered: "output" for a client on the
	// host, "prerouting" for one elsewhere.
	Hook     string       `json:"hook"`
	Outcomes []NATOutcome `json:"outcomes"`
	// MayMatch quotes the rules with conditions the walk could not decide
	// that change where the packet goes, and Problems what stopped it
	// (cycles, unknown targets); both empty when the path is certain.
	MayMatch []string `json:"may_match,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// Certain reports whether the path depends on nothing the walk could not
// decide.
func (p *NATPath) Certain() bool { return len(p.MayMatch) == 0 && len(p.Problems) == 0 }

// NATOutcome is one way the packet may go (see firewall.Outcome).
type NATOutcome struct {
	// Verdict is "accept", "drop", "reject" or "unknown".
	Verdict string `json:"verdict"`
	// Dst is where it goes: translated, or as sent; Local when that is the
	// host's own address.
	Dst   netip.AddrPort `json:"dst"`
	Local bool           `json:"local,omitempty"`
	// Translation is the DNAT or REDIRECT rule that sent it to Dst;
	// Decider the rule that dropped or rejected it.
	Translation *firewall.Rule `json:"translation,omitempty"`
	Decider     *firewall.Rule `json:"decider,omitempty"`
	// Comment is the deciding or translating rule's comment, or that of
	// the map element that led to it (kube-proxy names Services there).
	Comment     string   `json:"comment,omitempty"`
	Probability float64  `json:"probability"`
	Assumed     []string `json:"assumed,omitempty"`
	// Steps are the rules that acted on the packet, in order.
	Steps []string `json:"steps,omitempty"`
	// Skipped is the translation a client arriving on another interface
	// gets, which a RETURN for this one's interface skipped (Docker's
	// "-A DOCKER -i docker0 -j RETURN": no hairpin from the bridge), and
	// Return that RETURN rule.
	Skipped *firewall.Rule `json:"skipped,omitempty"`
	Return  *firewall.Rule `json:"return,omitempty"`
}

// walk follows c through the host's rules; false when they were not read.
func (ev *HostEvidence) walk(c firewall.Conn) (NATPath, bool) {
	if ev.ruleset == nil {
		return NATPath{}, false
	}
	h := firewall.Host{}
	if ev.Addresses != nil {
		h.LocalAddrs = make([]netip.Prefix, 0, len(ev.Addresses))
		for _, p := range ev.Addresses {
			a := p.Addr().Unmap().WithZone("")
			h.LocalAddrs = append(h.LocalAddrs, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	if ev.routes != nil {
		h.Route = ev.routeDev
	}
	p := firewall.Walk(ev.ruleset, c, h)
	np := NATPath{Dst: c.Dst, Hook: p.Hook, Outcomes: []NATOutcome{}}
	for _, o := range p.Outcomes {
		no := NATOutcome{Verdict: o.Verdict, Dst: o.Dst, Local: o.Local, Translation: o.Translation,
			Decider: o.Decider, Comment: o.Comment, Probability: o.Probability}
		for _, a := range o.Assumed {
			no.Assumed = append(no.Assumed, a.String())
		}
		for _, s := range o.Steps {
			no.Steps = append(no.Steps, s.String())
			if s.Action == "return" && c.In != "" && o.Translation == nil && no.Return == nil {
				r := s.Rule
				no.Return = &r
			}
		}
		if no.Return != nil {
			// Would a client from elsewhere be translated?
			other := c
			other.In = "reach-elsewhere0"
			for _, oo := range firewall.Walk(ev.ruleset, other, h).Outcomes {
				if oo.Translation != nil && oo.Verdict == "accept" {
					no.Skipped = oo.Translation
					break
				}
			}
			if no.Skipped == nil {
				no.Return = nil
			}
		}
		np.Outcomes = append(np.Outcomes, no)
	}
	for _, m := range p.MayMatch {
		np.MayMatch = append(np.MayMatch, fmt.Sprintf("%s %s/%s: %s (if %s)", m.Rule.Source, m.Rule.Table, m.Rule.Chain,
			m.Rule.Text, strings.Join(m.Unchecked, ", ")))
	}
	for _, e := range p.Problems {
		np.Problems = append(np.Problems, e.Error())
	}
	return np, true
}

// routeDev is the device the host's main table sends a packet for a by
// (the longest prefix), "" when none.
func (ev *HostEvidence) routeDev(a netip.Addr) string {
	best := -1
	dev := ""
	for _, r := range ev.routes {
		if r.Prefix.Contains(a) && r.Prefix.Bits() > best {
			best, dev = r.Prefix.Bits(), r.Dev
		}
	}
	return dev
}

// walkFor records in ev.NAT where the host's rules send a connection to
// dst: from a client on the host (local) or from src elsewhere, and, for
// the ports published on loopback only, from the host to 127.0.0.1 (or ::1)
// on dst's port.
func (ev *HostEvidence) walkFor(src netip.Addr, dst netip.AddrPort, local bool) {
	c := firewall.Conn{Src: src, Dst: dst, Local: local}
	if !local && src.IsValid() && ev.routes != nil {
		c.In = ev.routeDev(src) // the way back to the client: where it comes in
	}
	if local {
		c.Src = netip.Addr{} // the kernel picks it: the walk knows how
	}
	lo := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), dst.Port())
	if !dst.Addr().Unmap().Is4() {
		lo = netip.AddrPortFrom(netip.IPv6Loopback(), dst.Port())
	}
	for _, c := range []firewall.Conn{c, {Dst: lo, Local: true}} {
		if ev.natPath(c.Dst, hookOf(c.Local)) != nil {
			continue
		}
		if p, ok := ev.walk(c); ok {
			ev.NAT = append(ev.NAT, p)
			ev.NATWalked = true
		}
	}
}

func hookOf(local bool) string {
	if local {
		return "output"
	}
	return "prerouting"
}

// natPath returns the walk of a connection to dst entering at hook, nil
// when none was made.
func (ev *HostEvidence) natPath(dst netip.AddrPort, hook string) *NATPath {
	dst = netip.AddrPortFrom(dst.Addr().Unmap().WithZone(""), dst.Port())
	for i := range ev.NAT {
		if p := &ev.NAT[i]; p.Dst == dst && p.Hook == hook {
			return p
		}
	}
	return nil
}

// gatherBeyond adds to ev what lies past the host's own sockets: the
// namespaces wired to it, its routes, the userland proxies among its
// listeners, and the ruleset the NAT walks need.
func gatherBeyond(ctx context.Context, src SocketSource, rs *firewall.Ruleset, ev *HostEvidence) {
	ev.ruleset = rs
	if rs != nil {
		for _, n := range rs.Notes {
			if !strings.HasSuffix(n, "is not installed") {
				ev.NATNotes = append(ev.NATNotes, n)
			}
		}
	}
	if rl, ok := src.(RouteLister); ok {
		if routes, err := rl.Routes(ctx); err != nil {
			ev.Notes = append(ev.Notes, fmt.Sprintf("routes: %v", err))
		} else {
			ev.routes = append([]Route{}, routes...)
		}
	}
	if pl, ok := src.(PeerLister); !ok {
		ev.Notes = append(ev.Notes, "the network namespaces of containers were not looked at")
	} else if ps, err := pl.Peers(ctx); err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("containers' network namespaces: %v", err))
	} else {
		ev.PeersSeen = true
		ev.Peers = ps.Peers
		ev.PeersNotSeen = len(ps.NotSeen)
		ev.PeerListening = []sockets.Socket{}
		for _, sk := range ps.Sockets {
			if sk.State == sockets.StateListen {
				ev.PeerListening = append(ev.PeerListening, sk)
			}
		}
		ev.Notes = append(ev.Notes, ps.Warnings...)
	}
	for _, sk := range ev.Listening {
		for _, p := range sk.Processes {
			if !sockets.IsProxy(p.Command) || slices.ContainsFunc(ev.Proxies, func(f sockets.Forward) bool { return f.PID == p.PID }) {
				continue
			}
			if f, ok := sockets.ProxyOf(p.PID); ok {
				ev.Proxies = append(ev.Proxies, f)
			}
		}
	}
}

// narrowBeyond keeps in out what ev shows past the host's own sockets
// about a connection from src to dst: the walks of that connection, the
// proxies on dst's port, and the namespaces a walk or a proxy leads to, or
// that listen on dst's port.
func (ev *HostEvidence) narrowBeyond(out *HostEvidence, src, dst netip.AddrPort) {
	out.PeersSeen, out.PeersNotSeen, out.NATNotes = ev.PeersSeen, ev.PeersNotSeen, ev.NATNotes
	out.NAT = append([]NATPath{}, ev.NAT...)
	out.NATWalked = ev.NATWalked
	// Also for an address of another host (a ClusterIP, a VIP): its
	// packets pass this host's rules all the same.
	out.ruleset, out.routes = ev.ruleset, ev.routes
	out.walkFor(src.Addr(), dst, false)
	out.ruleset, out.routes = nil, nil
	var leads []netip.Addr
	for _, p := range out.NAT {
		for _, o := range p.Outcomes {
			leads = append(leads, o.Dst.Addr())
		}
	}
	for _, f := range ev.Proxies {
		if f.Listen.Port() == dst.Port() {
			out.Proxies = append(out.Proxies, f)
			leads = append(leads, f.To.Addr())
		}
	}
	var keep []uint64 // the namespaces kept whole
	for _, p := range ev.Peers {
		if slices.ContainsFunc(leads, p.Has) {
			out.Peers = append(out.Peers, p)
			keep = append(keep, p.Namespace.Inode)
		}
	}
	if ev.PeerListening != nil {
		out.PeerListening = []sockets.Socket{}
	}
	// Also the listeners nothing leads to: a server never published may
	// be the one asked for, on another port (see notPublished).
	out.Unpublished = ev.unled()
	for _, sk := range out.Unpublished {
		if !slices.ContainsFunc(out.Peers, func(p sockets.Peer) bool { return p.Namespace.Inode == sk.Namespace.Inode }) {
			if p := ev.peerOf(sk.Namespace); p != nil {
				out.Peers = append(out.Peers, *p)
			}
		}
	}
	for _, sk := range ev.PeerListening {
		ino := sk.Namespace.Inode
		switch {
		case slices.Contains(keep, ino):
		case sk.Local.Port() == dst.Port():
			if !slices.ContainsFunc(out.Peers, func(p sockets.Peer) bool { return p.Namespace.Inode == ino }) {
				if i := slices.IndexFunc(ev.Peers, func(p sockets.Peer) bool { return p.Namespace.Inode == ino }); i >= 0 {
					out.Peers = append(out.Peers, ev.Peers[i])
				}
			}
		default:
			continue
		}
		out.PeerListening = append(out.PeerListening, sk)
	}
}

// listTranslated adds to ev.Listening the host's listeners on the ports its
// rules translate connections to (REDIRECT 80 to 8080), which the first
// listing, of the ports kept, left out.
func (ev *HostEvidence) listTranslated(ctx context.Context, src SocketSource, kept func(uint16) bool) {
	var ports []uint16
	for _, p := range ev.NAT {
		for _, o := range p.Outcomes {
			if o.Translation != nil && o.Local && !kept(o.Dst.Port()) && !slices.Contains(ports, o.Dst.Port()) {
				ports = append(ports, o.Dst.Port())
			}
		}
	}
	if len(ports) == 0 || ev.Listening == nil {
		return
	}
	ls, err := src.Listening(ctx, func(p uint16) bool { return slices.Contains(ports, p) })
	if err != nil {
		ev.Notes = append(ev.Notes, fmt.Sprintf("sockets on the ports translated to: %v", err))
		return
	}
	ev.Listening = append(ev.Listening, ls...)
}

// decidesOut reports whether the host's rules translate a connection it
// makes to dst (OUTPUT's DNAT: a ClusterIP, a port published by DNAT), or
// refuse it for a Service without endpoints: its own evidence then says
// where the connection goes.
func (ev *HostEvidence) decidesOut(dst netip.AddrPort) bool {
	p := ev.natPath(dst, "output")
	if p == nil {
		return false
	}
	for _, o := range p.Outcomes {
		if o.Translation != nil || noEndpoints(o) {
			return true
		}
	}
	return false
}
