package discover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/reach-tools/reach/internal/sys"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

func run(ctx context.Context, addrs []netip.Addr, opt Options) ([]Result, error) {
	var res []Result
	err := opt.RunIn(func() error {
		t, err := newNetTransport(ctx, opt)
		if err != nil {
			return err
		}
		defer t.close()
		res, err = schedule(ctx, addrs, opt, t)
		return err
	})
	return res, err
}

// neighEvery is how often the kernel's neighbour table is read while the
// kernel is asking for hosts; neighTries bounds the reads of one dump.
const (
	neighEvery = 10 * time.Millisecond
	neighTries = 5
)

// netTransport asks with real sockets. Sockets are made on the calling
// thread (inside Options.RunIn); readers run on goroutines of their own.
type netTransport struct {
	ctx     context.Context
	opt     Options
	answers chan answer
	done    chan struct{} // closed when the run ends: readers stop
	wg      sync.WaitGroup

	local  map[netip.Addr]bool    // this host's addresses
	ifaces map[int]*net.Interface // by index

	groups map[string]*group
	cache  []cachedRoute // on-link prefixes already looked up

	arp     map[int]*arpConn // by interface index; nil value: ARP cannot be sent there
	nd      map[string]*ndConn
	echo    [2]*echoConn // IPv4, IPv6; nil when no ICMP socket could be made
	echoErr [2]error
	echoID  uint16

	poller    *sys.Poller
	conn      sys.Connector
	pings     map[int]ping    // TCP pings in flight, by socket
	byHost    map[*host][]int // their sockets, by host
	neighs    map[netip.Addr]uint16
	neighAt   time.Time
	kernelUse int // hosts in flight the kernel asks for
}

type cachedRoute struct {
	prefix netip.Prefix
	r      sys.Route
}

type ping struct {
	h    *host
	port uint16
	sent time.Time
}

type arpConn struct {
	c   *arp.Client
	ifi *net.Interface
}

type ndConn struct {
	c   *ndp.Conn
	ifi *net.Interface
}

type echoConn struct {
	c   *icmp.PacketConn
	raw bool // a raw socket (privileged): we pick the ID and see others' replies
	v6  bool
}

func newNetTransport(ctx context.Context, opt Options) (*netTransport, error) {
	p, errno := sys.NewPoller(256)
	if errno != 0 {
		return nil, fmt.Errorf("discover: epoll: %w", errno)
	}
	sys.RaiseFileLimit() // TCP pings hold a socket per port per host in flight
	local := map[netip.Addr]bool{}
	if as, err := net.InterfaceAddrs(); err == nil {
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				local[p.Addr().Unmap()] = true
			}
		}
	}
	return &netTransport{ctx: ctx, opt: opt, answers: make(chan answer, 4096), done: make(chan struct{}),
		local: local, ifaces: map[int]*net.Interface{}, groups: map[string]*group{},
		arp: map[int]*arpConn{}, nd: map[string]*ndConn{}, echoID: uint16(rand.Uint32()),
		poller: p, pings: map[int]ping{}, byHost: map[*host][]int{}}, nil
}

func (t *netTransport) close() {
	close(t.done)
	for _, a := range t.arp {
		if a != nil {
			a.c.Close()
		}
	}
	for _, n := range t.nd {
		if n != nil {
			n.c.Close()
		}
	}
	for _, e := range t.echo {
		if e != nil {
			e.c.Close()
		}
	}
	for fd := range t.pings {
		sys.Close(fd)
	}
	t.poller.Close()
	t.wg.Wait()
}

func (t *netTransport) group(name string, onLink bool) *group {
	g := t.groups[name]
	if g == nil {
		g = &group{name: name, onLink: onLink}
		t.groups[name] = g
	}
	return g
}

// lookup finds the route to addr, reusing an earlier answer for an
// address of the same directly connected prefix.
func (t *netTransport) lookup(addr netip.Addr) (sys.Route, error) {
	for _, c := range t.cache {
		if c.prefix.Contains(addr) && addr != c.prefix.Masked().Addr() && !lastOf(c.prefix, addr) {
			r := c.r
			r.Dst = addr
			return r, nil
		}
	}
	var oif int
	if t.opt.Interface != "" {
		ifi, err := net.InterfaceByName(t.opt.Interface)
		if err != nil {
			return sys.Route{}, err
		}
		oif = ifi.Index
	}
	r, err := sys.RouteGetFrom(t.ctx, addr, sys.RouteFrom{Src: t.opt.Source, OIF: oif})
	if err != nil {
		return r, err
	}
	// A local address is in the local table as a /32 (/128), and route
	// checks them first, so a unicast answer may stand for its prefix.
	if r.Type == "unicast" && r.Prefix.IsValid() && r.Prefix.Bits() < addr.BitLen() && len(t.cache) < 64 {
		t.cache = append(t.cache, cachedRoute{r.Prefix, r})
	}
	return r, nil
}

// lastOf reports whether addr is the last address of an IPv4 prefix: its
// broadcast address.
func lastOf(p netip.Prefix, addr netip.Addr) bool {
	if !addr.Is4() || p.Bits() >= 31 {
		return false
	}
	return !p.Contains(addr.Next()) || addr.Next() == netip.IPv4Unspecified()
}

// iface returns the interface of index i, looked up once.
func (t *netTransport) iface(i int) (*net.Interface, error) {
	if ifi := t.ifaces[i]; ifi != nil {
		return ifi, nil
	}
	ifi, err := net.InterfaceByIndex(i)
	if err == nil {
		t.ifaces[i] = ifi
	}
	return ifi, err
}

// stopped reports whether the run is over (a reader's error is then the
// closing of its socket).
func (t *netTransport) stopped() bool {
	select {
	case <-t.done:
		return true
	case <-t.ctx.Done():
		return true
	default:
		return false
	}
}

func (t *netTransport) route(addr netip.Addr) route {
	if t.local[addr.WithZone("")] {
		return route{final: &Result{State: Up, By: Local, Reason: ReasonLocalhost, Evidence: "an address of this host"}}
	}
	r, err := t.lookup(addr)
	switch {
	case err != nil:
		return route{final: &Result{State: Unknown, Evidence: "no route to ask it by: " + err.Error()}}
	case r.Type == "local":
		return route{final: &Result{State: Up, By: Local, Reason: ReasonLocalhost, Evidence: "an address of this host"}}
	case r.Type != "unicast":
		return route{final: &Result{State: Unknown, Evidence: "a " + r.Type + " route: nothing to ask"}}
	}
	ifi, err := t.iface(r.IfIndex)
	if err != nil {
		return route{final: &Result{State: Unknown, Evidence: "route by interface " + fmt.Sprint(r.IfIndex) + ": " + err.Error()}}
	}
	if r.Gateway.IsValid() {
		g := t.group("router "+r.Gateway.String(), false)
		if t.echoConn(addr.Is6()) != nil {
			return route{g: g, by: Echo}
		}
		return route{g: g, by: TCP}
	}
	g := t.group(ifi.Name, true)
	if addr.Is4() {
		if t.arpConn(ifi) != nil {
			return route{g: g, by: ARP}
		}
	} else if t.ndConn(ifi, r.Src) != nil {
		return route{g: g, by: ND}
	}
	// Without the privilege to ask ourselves, the kernel asks when a
	// packet goes out: a TCP connect. (Not a ping: packets waiting for a
	// neighbour count against their socket's buffer, and one ping socket
	// for a /24 of absent neighbours fills it, blocking every later
	// ping for the kernel's 3 s; each connect has a socket of its own.)
	return route{g: g, by: TCP, kernel: true}
}

// arpConn opens (once per interface) the AF_PACKET socket ARP goes by; nil
// without the privilege or on a link without ARP.
func (t *netTransport) arpConn(ifi *net.Interface) *arpConn {
	if a, ok := t.arp[ifi.Index]; ok {
		return a
	}
	t.arp[ifi.Index] = nil
	if t.opt.Unprivileged || len(ifi.HardwareAddr) != 6 || ifi.Flags&net.FlagLoopback != 0 {
		return nil
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		t.opt.Logger.Debug("discover: no ARP socket; the kernel will ask", "interface", ifi.Name, "err", err)
		return nil
	}
	a := &arpConn{c: c, ifi: ifi}
	t.arp[ifi.Index] = a
	t.wg.Go(func() { t.readARP(a) })
	return a
}

func (t *netTransport) readARP(a *arpConn) {
	for {
		p, _, err := a.c.Read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.stopped() {
				return
			}
			continue // a frame that is not ARP
		}
		if p.Operation != arp.OperationReply {
			continue
		}
		mac := append(net.HardwareAddr(nil), p.SenderHardwareAddr...)
		t.deliver(answer{addr: p.SenderIP.Unmap(), by: ARP, reason: ReasonARPResponse, mac: mac, at: time.Now(),
			evidence: "ARP reply from " + mac.String() + " on " + a.ifi.Name})
	}
}

// ndConn opens (once per interface and source) the raw ICMPv6 socket
// neighbour solicitations go by; nil without the privilege.
func (t *netTransport) ndConn(ifi *net.Interface, src netip.Addr) *ndConn {
	key := ifi.Name + " " + src.String()
	if n, ok := t.nd[key]; ok {
		return n
	}
	t.nd[key] = nil
	if t.opt.Unprivileged || len(ifi.HardwareAddr) == 0 || !src.IsValid() {
		return nil
	}
	addr := ndp.Addr(src.String())
	if src.IsLinkLocalUnicast() {
		addr = ndp.LinkLocal
	}
	c, _, err := ndp.Listen(ifi, addr)
	if err != nil {
		t.opt.Logger.Debug("discover: no ND socket; the kernel will ask", "interface", ifi.Name, "err", err)
		return nil
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	c.SetICMPFilter(&f) // without it other ICMPv6 is read and skipped
	n := &ndConn{c: c, ifi: ifi}
	t.nd[key] = n
	t.wg.Go(func() { t.readND(n) })
	return n
}

func (t *netTransport) readND(n *ndConn) {
	for {
		m, _, from, err := n.c.ReadFrom()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.stopped() {
				return
			}
			continue
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok {
			continue
		}
		var mac net.HardwareAddr
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				mac = append(mac, l.Addr...)
			}
		}
		ev := "neighbour advertisement from " + from.String() + " on " + n.ifi.Name
		if mac != nil {
			ev += " (" + mac.String() + ")"
		}
		t.deliver(answer{addr: na.TargetAddress.WithZone(""), by: ND, reason: ReasonNDResponse, mac: mac, at: time.Now(), evidence: ev})
	}
}

// echoConn opens (once per family) the ICMP socket echo requests go by:
// raw when privileged, the ping socket where ping_group_range allows; nil
// when neither.
func (t *netTransport) echoConn(v6 bool) *echoConn {
	i := 0
	if v6 {
		i = 1
	}
	if t.echo[i] != nil || t.echoErr[i] != nil {
		return t.echo[i]
	}
	raw, dgram, any := "ip4:icmp", "udp4", "0.0.0.0"
	if v6 {
		raw, dgram, any = "ip6:ipv6-icmp", "udp6", "::"
	}
	if t.opt.Source.IsValid() {
		any = t.opt.Source.Unmap().String()
	}
	var c *icmp.PacketConn
	var err error
	isRaw := !t.opt.Unprivileged
	if isRaw {
		c, err = icmp.ListenPacket(raw, any)
		isRaw = err == nil
	}
	if c == nil {
		c, err = icmp.ListenPacket(dgram, any)
	}
	if err != nil {
		t.echoErr[i] = err
		t.opt.Logger.Debug("discover: no ICMP socket; TCP pings only", "v6", v6, "err", err)
		return nil
	}
	if v6 && isRaw {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		c.IPv6PacketConn().SetICMPFilter(&f)
	}
	e := &echoConn{c: c, raw: isRaw, v6: v6}
	t.echo[i] = e
	t.wg.Go(func() { t.readEcho(e) })
	return e
}

func (t *netTransport) readEcho(e *echoConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := e.c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.stopped() {
				return
			}
			continue
		}
		id, ok := parseEchoReply(buf[:n], e.v6)
		if !ok || (e.raw && id != t.echoID) {
			continue // not an answer to us (a raw socket sees every ICMP message)
		}
		var addr netip.Addr
		switch a := from.(type) {
		case *net.IPAddr:
			addr, _ = netip.AddrFromSlice(a.IP)
		case *net.UDPAddr:
			addr, _ = netip.AddrFromSlice(a.IP)
		}
		t.deliver(answer{addr: addr.Unmap(), by: Echo, reason: ReasonEchoReply, at: time.Now(), evidence: "ICMP echo reply"})
	}
}

// deliver hands an answer to the scheduler, unless the run is over.
func (t *netTransport) deliver(a answer) {
	select {
	case t.answers <- a:
	case <-t.done:
	case <-t.ctx.Done():
	}
}

func (t *netTransport) send(h *host) {
	if h.kernel {
		t.kernelUse += boolInt(h.tries == 1)
	}
	switch h.by {
	case ARP:
		t.sendARP(h)
		return
	case ND:
		t.sendND(h)
		return
	case Echo:
		t.sendEcho(h)
	}
	// TCP pings go with the first request only, and their sockets stay
	// open until the verdict, so a late answer still counts. Sending them
	// again would add nothing: the kernel asks a neighbour once a second
	// whatever we send, and a host silent behind a router has its ports
	// scanned next anyway.
	if h.tries == 1 {
		t.sendTCP(h)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t *netTransport) sendARP(h *host) {
	r, err := t.lookup(h.addr)
	if err != nil {
		return
	}
	a := t.arp[r.IfIndex]
	if a == nil {
		return
	}
	src := r.Src
	p, err := arp.NewPacket(arp.OperationRequest, a.ifi.HardwareAddr, src, ethernet.Broadcast, h.addr)
	if err == nil {
		err = a.c.WriteTo(p, ethernet.Broadcast)
	}
	if err != nil {
		t.opt.Logger.Debug("discover: ARP request", "addr", h.addr, "err", err)
	}
}

func (t *netTransport) sendND(h *host) {
	r, err := t.lookup(h.addr)
	if err != nil {
		return
	}
	ifi, err := t.iface(r.IfIndex)
	if err != nil {
		return
	}
	n := t.nd[ifi.Name+" "+r.Src.String()]
	if n == nil {
		return
	}
	snm, err := ndp.SolicitedNodeMulticast(h.addr)
	if err != nil {
		return
	}
	m := &ndp.NeighborSolicitation{TargetAddress: h.addr,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}}}
	if err := n.c.WriteTo(m, nil, snm.WithZone(ifi.Name)); err != nil {
		t.opt.Logger.Debug("discover: neighbour solicitation", "addr", h.addr, "err", err)
	}
}

func (t *netTransport) sendEcho(h *host) {
	e := t.echoConn(h.addr.Is6())
	if e == nil {
		return
	}
	b := echoRequest(h.addr.Is6(), t.echoID, uint16(h.tries))
	var to net.Addr = &net.IPAddr{IP: h.addr.AsSlice(), Zone: h.addr.Zone()}
	if !e.raw {
		to = &net.UDPAddr{IP: h.addr.AsSlice(), Zone: h.addr.Zone()}
	}
	// Never wait for room in the socket's buffer: a request not sent is
	// an answer not had, never a wrong verdict.
	e.c.SetWriteDeadline(time.Now().Add(time.Millisecond))
	if _, err := e.c.WriteTo(b, to); err != nil {
		t.opt.Logger.Debug("discover: echo request", "addr", h.addr, "err", err)
	}
}

// sendTCP connects to each ping port.
func (t *netTransport) sendTCP(h *host) {
	for _, port := range t.opt.PingPorts {
		fd, errno := sys.NewTCPSocket(h.addr.Is6(), 0)
		if errno != 0 {
			return // out of sockets: this host gets fewer pings, never a wrong verdict
		}
		if t.opt.Interface != "" && sys.BindDevice(fd, t.opt.Interface) != 0 ||
			t.opt.Source.IsValid() && sys.BindSource(fd, t.opt.Source.Unmap()) != 0 {
			sys.Close(fd)
			return
		}
		errno = t.conn.Connect(fd, h.addr, port, 0)
		switch errno {
		case syscall.EINPROGRESS:
			if t.poller.Add(fd) != 0 {
				sys.Close(fd)
				continue
			}
			t.pings[fd] = ping{h: h, port: port, sent: time.Now()}
			t.byHost[h] = append(t.byHost[h], fd)
		case 0:
			sys.CloseReset(fd)
			t.pingAnswer(h, port, ReasonSynAck)
		case syscall.ECONNREFUSED:
			sys.Close(fd)
			t.pingAnswer(h, port, ReasonReset)
		default:
			sys.Close(fd)
		}
	}
}

func (t *netTransport) pingAnswer(h *host, port uint16, reason string) {
	what := map[string]string{ReasonSynAck: "accepted", ReasonReset: "refused with a reset"}[reason]
	a := answer{addr: h.addr, by: TCP, reason: reason, at: time.Now(),
		evidence: fmt.Sprintf("TCP ping to port %d %s", port, what)}
	select {
	case t.answers <- a:
	default: // full: the answer is lost, never wrong; the host is asked again
	}
}

func (t *netTransport) forget(h *host) {
	if h.kernel && h.tries > 0 {
		t.kernelUse--
	}
	for _, fd := range t.byHost[h] {
		if _, ok := t.pings[fd]; ok {
			delete(t.pings, fd)
			sys.Close(fd)
		}
	}
	delete(t.byHost, h)
}

func (t *netTransport) poll(wait time.Duration, fn func(answer)) {
	ready, _ := t.poller.Wait(wait)
	for _, r := range ready {
		p, ok := t.pings[r.FD]
		if !ok {
			continue
		}
		switch errno := sys.SocketError(r.FD); errno {
		case 0: // writable without an error: connected
			delete(t.pings, r.FD)
			sys.CloseReset(r.FD)
			t.pingAnswer(p.h, p.port, ReasonSynAck)
		case syscall.ECONNREFUSED:
			delete(t.pings, r.FD)
			sys.Close(r.FD)
			t.pingAnswer(p.h, p.port, ReasonReset)
		default: // unreachable, prohibited, timed out: no evidence of a host
			delete(t.pings, r.FD)
			sys.Close(r.FD)
		}
	}
drain:
	for {
		select {
		case a := <-t.answers:
			fn(a)
		default:
			break drain
		}
	}
	if t.kernelUse > 0 && time.Since(t.neighAt) >= neighEvery {
		t.readNeighbours(fn)
	}
}

// readNeighbours reads the kernel's neighbour table, and passes an answer
// for each address whose entry was confirmed (REACHABLE).
func (t *netTransport) readNeighbours(fn func(answer)) {
	t.neighAt = time.Now()
	var m map[netip.Addr]uint16
	var err error
	// A dump is cut short (NLM_F_DUMP_INTR) when the table changes under
	// it, as it does while the kernel resolves a /24 of neighbours: try
	// again. Failing, the last reading stands; it only gives answers
	// (verdicts ask for each entry: see neigh).
	for range neighTries {
		m = make(map[netip.Addr]uint16, len(t.neighs))
		if err = sys.Neighbours(t.ctx, func(a netip.Addr, st uint16) { m[a] = st }); err == nil {
			break
		}
	}
	if err != nil {
		t.opt.Logger.Debug("discover: neighbour table", "err", err)
		return
	}
	t.neighs = m
	now := time.Now()
	for a, st := range m {
		if st&sys.NeighReachable != 0 {
			fn(answer{addr: a, by: neighMethod(a), reason: neighReason(a), at: now, coarse: true,
				evidence: "the kernel's " + map[bool]string{true: "ARP request", false: "neighbour solicitation"}[a.Is4()] + " was answered (neighbour entry REACHABLE)"})
		}
	}
}

// neigh asks the kernel for addr's neighbour entry itself: a dump of the
// whole table is cut short when the table changes under it, as it does
// while the kernel resolves a /24, and a verdict must not rest on one.
func (t *netTransport) neigh(addr netip.Addr) neighEntry {
	r, err := t.lookup(addr)
	if err != nil {
		return noEntry
	}
	st, ok, err := sys.Neighbour(t.ctx, addr, r.IfIndex)
	switch {
	case err != nil:
		t.opt.Logger.Debug("discover: neighbour entry", "addr", addr, "err", err)
		return noEntry // neither way
	case !ok:
		return noEntry
	case st&sys.NeighReachable != 0:
		return resolvedEntry
	case st&(sys.NeighIncomplete|sys.NeighFailed) != 0:
		return unresolvedEntry
	}
	return noEntry // stale, being checked again, or static: neither way
}
