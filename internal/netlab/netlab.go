// Package netlab makes throw-away hosts for integration tests. Each Host is a
// Linux network namespace; Link joins two hosts with a veth pair addressed from
// 198.18.0.0/15 (LinkV6: fd00::/8). Nothing is connected to the root namespace
// and no host has a default route, so lab traffic can reach only lab hosts.
//
// Everything a Lab makes is removed by t.Cleanup, also after a failed or
// panicking test. Labs left behind by a test binary that was killed (for
// example by -timeout) are removed by the next New on the machine.
//
// Lab.Pair (a client and a server on one link) and Lab.Routed (client,
// router, server) are the layouts most tests need; Lab.LAN (and LANWith:
// IPv6, hosts that answer late) puts many hosts on one switch. Lab.Docker lays out a
// Docker host as dockerd does (bridge, container namespaces, its iptables
// rules, docker-proxy processes) on 198.19.0.0/24; Lab.Kube a Kubernetes
// node as kube-proxy programs it, in iptables or nftables mode (pods on
// 198.19.1.0/24, ClusterIPs on 198.19.2.0/24); Link leaves those subnets
// alone. Host.Serve runs a server process that says who answered.
//
// Sockets are created inside a host with Listen, ListenPacket and DialContext
// (a probe.DialFunc); Resolver and ServeDNS keep name lookups in the lab;
// commands run inside a host with Run, Exec and Start; Iptables, Nft, AddRoute
// and Sysctl shape its network; ApplyRules and AddRule load firewall rules
// that are taken out again when the test ends. All of it needs root (see
// Require).
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// execTimeout bounds every command the lab runs, so a hung tool fails the test
// instead of hanging it.
const execTimeout = time.Minute

// Require skips the test when the lab cannot work here and the test is not
// running in CI (env CI empty and not root). In CI, or as root, a missing
// prerequisite fails the test with the reason, so CI never silently skips.
func Require(t testing.TB) {
	t.Helper()
	err := supported()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "" && os.Geteuid() != 0 {
		t.Skipf("netlab: %v (skipped: not root and CI is not set)", err)
	}
	t.Fatalf("netlab: %v", err)
}

// Lab owns a set of hosts and links. Host, Link and the other Lab methods
// fail the test given to New.
type Lab struct {
	t       testing.TB
	id      string // random; every namespace of the lab is named rl-<id>-<host>
	release func()

	mu       sync.Mutex
	hosts    []*Host
	links    []*link
	procs    []*proc
	veths    []veth         // every veth pair, for Delete
	nets     int            // subnets handed out to links and LANs so far
	reserved []netip.Prefix // subnets of bridges the lab built (Docker, Kube)
	bin      string         // directory of the role links (startRole)
	lines    []*delay       // delay lines of LANWith, stopped at cleanup
}

// Host is one network namespace of a lab.
type Host struct {
	lab  *Lab
	name string
}

// veth is a veth pair: interface ifA in host a, its peer ifB in b.
type veth struct {
	a, b     *Host
	ifA, ifB string
}

// addVeth makes a veth pair between a and b and records it.
func (l *Lab) addVeth(a *Host, ifA string, b *Host, ifB string) {
	l.t.Helper()
	l.ip("link", "add", ifA, "netns", a.name, "type", "veth", "peer", "name", ifB, "netns", b.name)
	l.mu.Lock()
	l.veths = append(l.veths, veth{a: a, b: b, ifA: ifA, ifB: ifB})
	l.mu.Unlock()
}

// link is one veth pair, or one LAN; each of hosts has an interface named
// ifname on it.
type link struct {
	prefix netip.Prefix
	hosts  []*Host
	ifname string
	next   netip.Addr // the next address AddAddr hands out
}

// New makes an empty lab and registers its removal with t.Cleanup.
func New(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	sweep()
	id := strings.ToLower(rand.Text()[:6])
	release, err := hold(id)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	l := &Lab{t: t, id: id, release: release}
	t.Cleanup(l.cleanup)
	return l
}

// Host makes a new namespace with its loopback up, so 127.0.0.1 and ::1 work
// inside it. name must be short lowercase letters, digits and dashes, unique in
// the lab.
func (l *Lab) Host(name string) *Host {
	l.t.Helper()
	if !validName(name) {
		l.t.Fatalf("netlab: host name %q: use 1-20 of a-z, 0-9 and -", name)
	}
	h := &Host{lab: l, name: "rl-" + l.id + "-" + name}
	l.mu.Lock()
	for _, o := range l.hosts {
		if o.name == h.name {
			l.mu.Unlock()
			l.t.Fatalf("netlab: host %q already exists in this lab", name)
		}
	}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	// Registered before creation, so a half-made host is still removed.
	l.ip("netns", "add", h.name)
	l.ip("-n", h.name, "link", "set", "lo", "up")
	return h
}

func validName(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// Link joins a and b with a veth pair on a fresh 198.18.X.0/24 and returns the
// address of a's end and of b's end. It adds no routes beyond the subnet.
func (l *Lab) Link(a, b *Host) (netip.Addr, netip.Addr) {
	l.t.Helper()
	return l.link(a, b, false)
}

// LinkV6 is Link with a fresh fd00:0:0:X::/64 (duplicate address detection
// off, so the addresses work at once).
func (l *Lab) LinkV6(a, b *Host) (netip.Addr, netip.Addr) {
	l.t.Helper()
	return l.link(a, b, true)
}

// maxLinks is the number of /24s in 198.18.0.0/15.
const maxLinks = 512

func (l *Lab) link(a, b *Host, v6 bool) (netip.Addr, netip.Addr) {
	l.t.Helper()
	if a == b || a.lab != l || b.lab != l {
		l.t.Fatalf("netlab: Link needs two different hosts of this lab")
	}
	l.mu.Lock()
	n := len(l.links)
	prefix, ok := l.nextPrefix(v6)
	if !ok {
		l.mu.Unlock()
		l.t.Fatalf("netlab: more than %d links in one lab", maxLinks)
	}
	lk := &link{prefix: prefix, hosts: []*Host{a, b}, ifname: fmt.Sprintf("veth%d", n)}
	addrA, addrB := nth(prefix, 1), nth(prefix, 2)
	lk.next = nth(prefix, 3)
	l.links = append(l.links, lk)
	l.mu.Unlock()

	l.addVeth(a, lk.ifname, b, lk.ifname)
	// Up before addressing: an IPv6 address added to a down interface joins
	// its solicited-node group late, and the first neighbour solicitation
	// for it is lost (a 1 s stall on the first connection).
	for i, addr := range []netip.Addr{addrA, addrB} {
		l.ip("-n", lk.hosts[i].name, "link", "set", lk.ifname, "up")
		if err := addAddr(lk.hosts[i], lk, addr); err != nil {
			l.t.Fatalf("netlab: %v", err)
		}
	}
	l.waitUp(a, lk.ifname)
	l.waitUp(b, lk.ifname)
	return addrA, addrB
}

// waitUp waits (bounded) until ifname in h is operationally up. The kernel
// turns a veth's carrier on through its link-watch work, which may run up to
// a second later when both ends have the same ifindex (as in two fresh
// namespaces); until then packets are dropped, and a test's first SYN or ping
// is lost and retried after 1 s.
func (l *Lab) waitUp(h *Host, ifname string) {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := run(nil, "ip", "-n", h.name, "-o", "link", "show", "dev", ifname)
		// A tap device reports no operational state (UNKNOWN); its
		// carrier (LOWER_UP) is what counts.
		up := strings.Contains(string(out), " state UP ") ||
			strings.Contains(string(out), " state UNKNOWN ") && strings.Contains(string(out), ",LOWER_UP>")
		if err == nil && up {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("netlab: %s in %s not up after 5s: %s %v", ifname, h.name, out, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LAN puts hosts on one shared 198.18.X.0/24, as if plugged into one switch:
// a bridge in a namespace of its own (named lanX-sw). It returns each host's
// address, in order. Every host reaches every other directly; no routes are
// added beyond the subnet. Addresses no host holds are simply not there: no
// ARP or ND answer comes for them. AddAddr and Unowned work on it as on a
// Link.
func (l *Lab) LAN(hosts ...*Host) []netip.Addr {
	l.t.Helper()
	return l.LANWith(LANOptions{}, hosts...)
}

// LANOptions shape a LAN made by LANWith; the zero value is LAN's.
type LANOptions struct {
	// IPv6 addresses the LAN from a fresh fd00:0:0:X::/64 (duplicate
	// address detection off, multicast snooping off in the bridge so
	// neighbour solicitations reach every port, as on a plain switch).
	IPv6 bool
	// Delay holds back every frame a host sends into the LAN (ARP and ND
	// answers, ICMP, TCP) for that long, so the host answers late; frames
	// to it are not delayed. Its port is a user-space delay line (two tap
	// devices and this test process between them) rather than a veth,
	// because tc's netem is not built into every kernel. The line stops
	// when the test ends.
	Delay map[*Host]time.Duration
}

// LANWith is LAN with options.
func (l *Lab) LANWith(opt LANOptions, hosts ...*Host) []netip.Addr {
	l.t.Helper()
	if len(hosts) < 2 || len(hosts) > unownedHost-1 {
		l.t.Fatalf("netlab: LAN needs 2 to %d hosts", unownedHost-1)
	}
	for i, h := range hosts {
		if h.lab != l || slices.Index(hosts, h) != i {
			l.t.Fatalf("netlab: LAN needs different hosts of this lab")
		}
	}
	for h, d := range opt.Delay {
		if !slices.Contains(hosts, h) || d <= 0 {
			l.t.Fatalf("netlab: LAN delay %v for %s: give a positive delay for a host of the LAN", d, h.name)
		}
	}
	l.mu.Lock()
	n := len(l.links)
	prefix, ok := l.nextPrefix(opt.IPv6)
	if !ok {
		l.mu.Unlock()
		l.t.Fatalf("netlab: more than %d links in one lab", maxLinks)
	}
	lk := &link{prefix: prefix, hosts: slices.Clone(hosts), ifname: fmt.Sprintf("lan%d", n)}
	lk.next = nth(prefix, byte(len(hosts)+1))
	l.links = append(l.links, lk)
	l.mu.Unlock()

	sw := l.Host(fmt.Sprintf("lan%d-sw", n))
	l.ip("-n", sw.name, "link", "add", "br0", "type", "bridge")
	if opt.IPv6 {
		l.ip("-n", sw.name, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
	}
	l.ip("-n", sw.name, "link", "set", "br0", "up")
	addrs := make([]netip.Addr, len(hosts))
	for i, h := range hosts {
		port := fmt.Sprintf("p%d", i)
		if d := opt.Delay[h]; d > 0 {
			l.delayLine(h, lk.ifname, sw, port, d)
		} else {
			l.addVeth(h, lk.ifname, sw, port)
		}
		l.ip("-n", sw.name, "link", "set", port, "master", "br0", "up")
		// Up before addressing (see link).
		l.ip("-n", h.name, "link", "set", lk.ifname, "up")
		addrs[i] = nth(prefix, byte(i+1))
		if err := addAddr(h, lk, addrs[i]); err != nil {
			l.t.Fatalf("netlab: %v", err)
		}
	}
	for i, h := range hosts {
		l.waitUp(h, lk.ifname)
		l.waitUp(sw, fmt.Sprintf("p%d", i))
	}
	return addrs
}

// nextPrefix hands out the next free 198.18.X.0/24 of 198.18.0.0/15 (or
// fd00:0:0:X::/64), skipping subnets reserved by reserve. l.mu is held.
func (l *Lab) nextPrefix(v6 bool) (netip.Prefix, bool) {
	for ; l.nets < maxLinks; l.nets++ {
		n := l.nets
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(n>>8), byte(n), 0}), 24)
		if slices.ContainsFunc(l.reserved, p.Overlaps) {
			continue
		}
		l.nets++
		if v6 {
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 6: byte(n >> 8), 7: byte(n)}), 64)
		}
		return p, true
	}
	return netip.Prefix{}, false
}

// reserve keeps Link and LAN off prefix, which must lie in 198.18.0.0/15
// and overlap no link or reservation already made.
func (l *Lab) reserve(t testing.TB, prefix netip.Prefix) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !labNet.Contains(prefix.Addr()) || prefix.Bits() < labNet.Bits() {
		t.Fatalf("netlab: subnet %v is outside the lab's %v", prefix, labNet)
	}
	for _, lk := range l.links {
		if lk.prefix.Overlaps(prefix) {
			t.Fatalf("netlab: subnet %v overlaps link subnet %v", prefix, lk.prefix)
		}
	}
	for _, r := range l.reserved {
		if r.Overlaps(prefix) {
			t.Fatalf("netlab: subnet %v overlaps %v, already in use in this lab", prefix, r)
		}
	}
	l.reserved = append(l.reserved, prefix)
}

// labNet holds every IPv4 address the lab hands out.
var labNet = netip.MustParsePrefix("198.18.0.0/15")

// nth returns the address i after the prefix's first address (i < 256).
func nth(p netip.Prefix, i byte) netip.Addr {
	if p.Addr().Is4() {
		a := p.Addr().As4()
		a[3] = i
		return netip.AddrFrom4(a)
	}
	a := p.Addr().As16()
	a[15] = i
	return netip.AddrFrom16(a)
}

// unownedHost is the host part of Unowned's address; AddAddr stops before it.
const unownedHost = 254

// addAddr puts addr on h's end of lk.
func addAddr(h *Host, lk *link, addr netip.Addr) error {
	args := []string{"-n", h.name, "addr", "add", netip.PrefixFrom(addr, lk.prefix.Bits()).String(), "dev", lk.ifname}
	if addr.Is6() {
		args = append(args, "nodad")
	}
	if out, err := run(nil, "ip", args...); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// linkOf returns the link whose subnet holds addr.
func (l *Lab) linkOf(addr netip.Addr) *link {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lk := range l.links {
		if lk.prefix.Contains(addr) {
			return lk
		}
	}
	return nil
}

// AddAddr adds another address to h's end of the link whose subnet holds on
// (an address Link returned) and returns it, e.g. to run a second server or
// to be the target of a rule that must not touch the first address.
func (h *Host) AddAddr(t testing.TB, on netip.Addr) netip.Addr {
	t.Helper()
	l := h.lab
	lk := l.linkOf(on)
	if lk == nil || !slices.Contains(lk.hosts, h) {
		t.Fatalf("netlab: %v is not on a link of host %s", on, h.name)
	}
	l.mu.Lock()
	addr := lk.next
	if nth(lk.prefix, unownedHost) == addr {
		l.mu.Unlock()
		t.Fatalf("netlab: no addresses left on %v", lk.prefix)
	}
	lk.next = addr.Next()
	l.mu.Unlock()
	if err := addAddr(h, lk, addr); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return addr
}

// Unowned returns an address on the subnet of the link that holds on, that no
// host owns. Connecting to it from a host on that link fails neighbour
// discovery: EHOSTUNREACH after about 3 s (the kernel's default retries).
func (l *Lab) Unowned(t testing.TB, on netip.Addr) netip.Addr {
	t.Helper()
	lk := l.linkOf(on)
	if lk == nil {
		t.Fatalf("netlab: %v is not on a link of this lab", on)
	}
	return nth(lk.prefix, unownedHost)
}

// ip runs ip(8) in the root namespace (for -n NS or netns operations).
func (l *Lab) ip(args ...string) {
	l.t.Helper()
	if out, err := run(nil, "ip", args...); err != nil {
		l.t.Fatalf("netlab: %v\n%s", err, out)
	}
}

// run runs a command with a bounded time and returns its combined output.
func run(stdin io.Reader, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	dieWithParent(cmd)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, err
}

// Name returns the namespace name (usable with ip netns exec and ip -n).
func (h *Host) Name() string { return h.name }

// Exec runs args inside the namespace and returns the combined output.
func (h *Host) Exec(args ...string) ([]byte, error) {
	return run(nil, "ip", append([]string{"netns", "exec", h.name}, args...)...)
}

// Run is Exec that fails t on error, showing the output.
func (h *Host) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Exec(args...)
	if err != nil {
		t.Fatalf("netlab: %v\n%s", err, out)
	}
	return string(out)
}

// InterfaceOf returns the name of h's interface that holds addr.
func (h *Host) InterfaceOf(t testing.TB, addr netip.Addr) string {
	t.Helper()
	f := strings.Fields(h.Run(t, "ip", "-o", "addr", "show", "to", addr.String()))
	if len(f) < 2 {
		t.Fatalf("no interface holds %v in %s", addr, h.Name())
	}
	return strings.TrimSuffix(f[1], ":")
}

// Iptables runs iptables inside the namespace (waiting for the xtables lock,
// which all namespaces share).
func (h *Host) Iptables(t testing.TB, args ...string) {
	t.Helper()
	h.Run(t, append([]string{"iptables", "-w"}, args...)...)
}

// Nft loads an nft script (nft -f -) inside the namespace.
func (h *Host) Nft(t testing.TB, script string) {
	t.Helper()
	out, err := run(strings.NewReader(script), "ip", "netns", "exec", h.name, "nft", "-f", "-")
	if err != nil {
		t.Fatalf("netlab: %v\n%s\nscript:\n%s", err, out, script)
	}
}

// AddRoute runs ip route add args inside the namespace, e.g.
// AddRoute(t, "unreachable", "198.19.0.0/16").
func (h *Host) AddRoute(t testing.TB, args ...string) {
	t.Helper()
	if out, err := run(nil, "ip", append([]string{"-n", h.name, "route", "add"}, args...)...); err != nil {
		t.Fatalf("netlab: %v\n%s", err, out)
	}
}

// Sysctl sets a per-namespace sysctl (e.g. "net.ipv4.ip_local_port_range")
// inside the namespace.
func (h *Host) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	// /proc/sys/net is per namespace of the thread that opens it.
	if err := h.Do(func() error { return os.WriteFile(path, []byte(value), 0) }); err != nil {
		t.Fatalf("netlab: sysctl %s=%s in %s: %v", key, value, h.name, err)
	}
}

// proc is a background process started with Start.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	host *Host
	once sync.Once
}

func (p *proc) stop() {
	p.once.Do(func() {
		if p.cmd.ProcessState == nil { // the test did not Wait for it
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
}

// Start runs args inside the namespace in the background. The process is
// killed (by pid) and reaped when t's test ends, and dies with the test binary;
// the test may Wait for it itself. Its output is logged if the test failed.
func (h *Host) Start(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.name}, args...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("netlab: start %s in %s: %v", strings.Join(args, " "), h.name, err)
	}
	p := &proc{cmd: cmd, out: out, host: h}
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("netlab: output of %q in %s:\n%s", strings.Join(args, " "), h.name, out.String())
		}
	})
	return cmd
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Do runs fn on an OS thread switched into the namespace and switches back.
// Sockets fn creates stay in the namespace; goroutines fn starts do not run in
// it. If switching back fails, the thread stays locked so Go discards it when
// the goroutine exits, and the error says so.
func (h *Host) Do(fn func() error) (err error) {
	runtime.LockOSThread()
	leave, err := enter(nsPath(h.name))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: enter namespace %s: %w", h.name, err)
	}
	defer func() {
		if lerr := leave(); lerr != nil {
			err = errors.Join(err, fmt.Errorf("netlab: leave namespace %s (this goroutine stays in it until it exits): %w", h.name, lerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// literal rejects addresses that would need a name lookup: lookups may run on
// other threads (outside the namespace) and would leave the lab.
func literal(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("netlab: %q: use an IP address, not a name (lookups would leave the lab)", addr)
	}
	return nil
}

// Listen opens a listener inside the namespace, closed when t's test ends.
// addr must be an IP literal or empty host, with a port (":0" picks one).
func (h *Host) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	if err := literal(addr); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("netlab: listen %s %s in %s: %v", network, addr, h.name, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket is Listen for packet sockets (udp, udp4, udp6).
func (h *Host) ListenPacket(t testing.TB, network, addr string) net.PacketConn {
	t.Helper()
	if err := literal(addr); err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	err := h.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("netlab: listen %s %s in %s: %v", network, addr, h.name, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// DialContext dials from inside the namespace; it has the shape of a DialFunc.
// addr must be an IP literal with a port. Errors are the net package's own,
// unwrapped, so callers classify exactly what a real dial returns.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := literal(addr); err != nil {
		return nil, err
	}
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Resolver returns a pure-Go resolver whose every query goes from inside h to
// nameserver, whatever /etc/resolv.conf says, so DNS tests stay in the lab.
// A nameserver address where nothing listens makes lookups fail at once;
// one dropped by a firewall makes them time out; ServeDNS answers. Go's error
// messages still name the resolv.conf nameserver it meant to ask ("lookup x
// on 10.0.0.53:53"), but no packet goes there.
func (h *Host) Resolver(nameserver netip.AddrPort) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return h.DialContext(ctx, network, nameserver.String())
		},
	}
}

// cleanup kills what the lab started and deletes its namespaces (which takes
// the veth pairs with them).
func (l *Lab) cleanup() {
	l.mu.Lock()
	procs, hosts, bin, lines := l.procs, l.hosts, l.bin, l.lines
	l.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
	for _, d := range lines {
		d.stop()
	}
	var errs []error
	for _, h := range hosts {
		errs = append(errs, killInside(h.name))
		if out, err := run(nil, "ip", "netns", "del", h.name); err != nil && namespaceExists(h.name) {
			errs = append(errs, fmt.Errorf("%w: %s", err, out))
		}
	}
	if bin != "" {
		errs = append(errs, os.RemoveAll(bin))
	}
	l.release()
	if err := errors.Join(errs...); err != nil {
		l.t.Errorf("netlab: cleanup: %v", err)
	}
}

// Delete removes h from the lab before the test ends, as a container that
// stops: the processes the lab started in it, and any other process still
// inside, are killed, the namespace is deleted, and Delete waits (bounded)
// until the kernel has removed its interfaces, which takes the peer end of
// each veth with them. h must not be used afterwards.
func (h *Host) Delete(t testing.TB) {
	t.Helper()
	l := h.lab
	l.mu.Lock()
	procs := slices.Clone(l.procs)
	l.mu.Unlock()
	for _, p := range procs {
		if p.host == h {
			p.stop()
		}
	}
	l.mu.Lock()
	lines := slices.Clone(l.lines)
	l.mu.Unlock()
	for _, d := range lines {
		if d.host == h || d.sw == h {
			d.stop() // its tap devices go with it
		}
	}
	if err := killInside(h.name); err != nil {
		t.Fatalf("netlab: delete %s: %v", h.name, err)
	}
	// The namespace dies once no process is in it and its bind mount is
	// gone; the kernel then removes its interfaces, and each veth's peer
	// with them, a little later.
	l.ip("netns", "del", h.name)
	l.mu.Lock()
	var peers []veth // b is the surviving end
	for _, v := range l.veths {
		switch h {
		case v.a:
			peers = append(peers, v)
		case v.b:
			peers = append(peers, veth{a: v.b, ifA: v.ifB, b: v.a, ifB: v.ifA})
		}
	}
	l.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for _, v := range peers {
		for {
			out, err := run(nil, "ip", "-n", v.b.name, "-o", "link", "show", "dev", v.ifB)
			if err != nil && (strings.Contains(string(out), "does not exist") || !namespaceExists(v.b.name)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("netlab: %s still has %s 5s after %s was deleted: %s", v.b.name, v.ifB, h.name, out)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// killInside kills, by pid, processes still in the namespace: children of
// processes the lab started (all of them run in this test's private namespace).
func killInside(ns string) error {
	out, err := run(nil, "ip", "netns", "pids", ns)
	if err != nil {
		if !namespaceExists(ns) {
			return nil
		}
		return fmt.Errorf("%w: %s", err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
	return nil
}

func nsPath(ns string) string { return "/run/netns/" + ns }

func namespaceExists(ns string) bool {
	_, err := os.Stat(nsPath(ns))
	return err == nil
}
