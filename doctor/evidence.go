package doctor

import (
	"context"
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
