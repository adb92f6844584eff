package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/sockets"
)

// SocketSource lists a host's listening sockets and addresses; the sockets
// package is the default.
type SocketSource interface {
	// Listening returns the listening sockets whose local port keep
	// accepts (nil: all of them).
	Listening(ctx context.Context, keep func(port uint16) bool) ([]sockets.Socket, error)
	Addresses() ([]netip.Prefix, error)
}

// FirewallSource reads a host's firewall rules, every table; the Ruleset's
// notes say what could not be read. firewall.Commands is the default.
type FirewallSource interface {
	Read(ctx context.Context) (*firewall.Ruleset, error)
}

// HostEvidence is what a host knows about a port: its addresses, listening
// sockets and firewall rules.
type HostEvidence struct {
	Host      string           `json:"host"` // "this host", or who answered
	Addresses []netip.Prefix   `json:"addresses"`
	Listening []sockets.Socket `json:"listening"` // every listening socket, for nearby ports
	Firewall  bool             `json:"firewall"`  // whether its firewall rules could be read
	Rules     []firewall.Rule  `json:"rules,omitempty"`
	Notes     []string         `json:"notes,omitempty"` // what could not be seen, and why

	// Peers are the network namespaces wired to the host's own (its
	// containers', its pods'; see sockets.Peer) and PeerListening their
	// listening sockets, each with its Namespace and Container.
	// PeersSeen says they were looked at (false: not, or an agent too
	// old to), PeersNotSeen how many could not be listed (the notes say
	// why).
	Peers         []sockets.Peer   `json:"peers,omitempty"`
	PeerListening []sockets.Socket `json:"peer_listening,omitempty"`
	PeersSeen     bool             `json:"peers_seen,omitempty"`
	PeersNotSeen  int              `json:"peers_not_seen,omitempty"`
	// Unpublished are, in an agent's answer, the listeners of those
	// namespaces that no DNAT rule or proxy of its host leads to, which
	// only the host's whole ruleset tells (see unled).
	Unpublished []sockets.Socket `json:"unpublished,omitempty"`
	// Proxies are the userland proxies (docker-proxy, socat) among the
	// listeners, with where they forward.
	Proxies []sockets.Forward `json:"proxies,omitempty"`
	// NAT holds where the host's rules send the connections asked about:
	// for an agent, the asker's; for this host, each of its addresses
	// dialled; and from the host to its loopback on that port. NATWalked
	// says the rules were walked (false: not read, or an agent too old
	// to); NATNotes what of them could not be read.
	NAT       []NATPath `json:"nat,omitempty"`
	NATWalked bool      `json:"nat_walked,omitempty"`
	NATNotes  []string  `json:"nat_notes,omitempty"`

	// The host's own ruleset and routes, for its walks; they stay on the
	// host (an agent walks and sends the paths).
	ruleset *firewall.Ruleset
	routes  []Route
	// foreign is the host's firewall where it is not netfilter (macOS,
	// Windows), read by ReadForeign; it stays on the host.
	foreign *ForeignFirewall
}

// RemoteEvidence asks the target host itself (an agent there) what it sees
// for a port. Nil means only the client's view is available. The doctor asks
// it once for each address of the target that is not this host's,
// concurrently; an error that is (or wraps) an *AgentError says why that
// agent gave nothing, so the report can say what to do.
type RemoteEvidence interface {
	Evidence(ctx context.Context, addr netip.AddrPort) (HostEvidence, error)
}

// hostSockets reads this host's sockets with the sockets package.
type hostSockets struct{}

func (hostSockets) Listening(ctx context.Context, keep func(uint16) bool) ([]sockets.Socket, error) {
	t, err := sockets.List(ctx, sockets.Options{Ports: keep})
	return t.Sockets, err
}

func (hostSockets) Addresses() ([]netip.Prefix, error) { return sockets.Addresses() }

// Gather collects this host's evidence: addresses, every listening socket,
// firewall rules, and what lies past its own namespace (the namespaces
// wired to it, the userland proxies among its listeners). An agent on a
// target host answers RemoteEvidence with it, narrowed (see Narrow).
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
		fw = hostFirewall{}
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
	rs, err := fw.Read(ctx)
	if fs, ok := fw.(ForeignSource); ok && errors.Is(err, firewall.ErrNotNetfilter) {
		// macOS, Windows: the system's own firewall, which the firewall
		// check weighs (checkForeign); a failure keeps Read's note.
		if ff, ferr := fs.ReadForeign(ctx); ferr == nil {
			ev.foreign = ff
		}
	}
	switch {
	case ev.foreign != nil:
	case err != nil:
		ev.Notes = append(ev.Notes, fmt.Sprintf("firewall rules: %v", err))
	default:
		ev.Rules, ev.Firewall = rs.Rules(), true
		if rs != nil {
			ev.Notes = append(ev.Notes, rs.Notes...)
		} else {
			rs = &firewall.Ruleset{} // read, and empty
		}
	}
	gatherBeyond(ctx, src, rs, &ev)
	return ev
}

// isLocal reports whether addr is one of ev's own addresses.
func (ev *HostEvidence) isLocal(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsUnspecified() || ev.has(addr)
}
