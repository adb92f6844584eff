package netlab

import "net/netip"

// Pair is the lab most tests need: a client host and a server host on one
// link, nothing else.
type Pair struct {
	Lab                    *Lab
	Client, Server         *Host // namespaces rl-<id>-client and rl-<id>-server
	ClientAddr, ServerAddr netip.Addr
}

// Pair makes hosts "client" and "server" joined by an IPv4 Link.
func (l *Lab) Pair() *Pair {
	l.t.Helper()
	p := &Pair{Lab: l, Client: l.Host("client"), Server: l.Host("server")}
	p.ClientAddr, p.ServerAddr = l.Link(p.Client, p.Server)
	return p
}

// PairV6 is Pair with an IPv6 link (LinkV6).
func (l *Lab) PairV6() *Pair {
	l.t.Helper()
	p := &Pair{Lab: l, Client: l.Host("client"), Server: l.Host("server")}
	p.ClientAddr, p.ServerAddr = l.LinkV6(p.Client, p.Server)
	return p
}

// Routed is a client and a server on two different subnets with a
// forwarding router between them: client - router - server.
type Routed struct {
	Lab                    *Lab
	Client, Router, Server *Host
	ClientAddr, ServerAddr netip.Addr
	// RouterClientSide is the router's address on the client's link (the
	// client's gateway); RouterServerSide its address on the server's link.
	RouterClientSide, RouterServerSide netip.Addr
}

// Routed makes hosts "client", "router" and "server" on two IPv4 links,
// with forwarding on in the router and a route each way through it (no
// default routes).
func (l *Lab) Routed() *Routed {
	l.t.Helper()
	r := &Routed{Lab: l, Client: l.Host("client"), Router: l.Host("router"), Server: l.Host("server")}
	r.ClientAddr, r.RouterClientSide = l.Link(r.Client, r.Router)
	r.RouterServerSide, r.ServerAddr = l.Link(r.Router, r.Server)
	r.Router.Sysctl(l.t, "net.ipv4.ip_forward", "1")
	r.Client.AddRoute(l.t, netip.PrefixFrom(r.ServerAddr, 24).Masked().String(), "via", r.RouterClientSide.String())
	r.Server.AddRoute(l.t, netip.PrefixFrom(r.ClientAddr, 24).Masked().String(), "via", r.RouterServerSide.String())
	return r
}
