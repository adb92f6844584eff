package firewall_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/internal/netlab"
)

// readRules reads h's rules as the doctor does: firewall.Commands inside
// its namespace.
func readRules(t *testing.T, h *netlab.Host) *firewall.Ruleset {
	t.Helper()
	var rs *firewall.Ruleset
	err := h.Do(func() (err error) {
		rs, err = firewall.Commands{}.Read(context.Background())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// hostFacts gives what the walk takes of h beyond its rules: its local
// addresses (the kernel's local routing table) and its routes (ip route
// get), read from inside its namespace.
func hostFacts(t *testing.T, h *netlab.Host) firewall.Host {
	t.Helper()
	var local []netip.Prefix
	for _, l := range strings.Split(h.Run(t, "ip", "-4", "route", "show", "table", "local"), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "local" {
			continue
		}
		p, err := netip.ParsePrefix(f[1])
		if err != nil {
			a, aerr := netip.ParseAddr(f[1])
			if aerr != nil {
				t.Fatalf("local route %q: %v", l, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		local = append(local, p)
	}
	return firewall.Host{LocalAddrs: local, Route: func(a netip.Addr) string { return routeDev(h, a) }}
}

// routeDev is the interface h routes a by ("" when it has no route).
func routeDev(h *netlab.Host, a netip.Addr) string {
	out, err := h.Exec("ip", "route", "get", a.String())
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if i := slices.Index(f, "dev"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// answer connects from h to addr: the server's banner, split into who
// answered, on which address, and from which, or the error.
type answer struct {
	name       string
	local, src netip.AddrPort
	err        error
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return a.name + " on " + a.local.String() + " from " + a.src.String()
}

func connect(t *testing.T, h *netlab.Host, addr netip.AddrPort, timeout time.Duration) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	line, err := h.Banner(ctx, addr)
	if err != nil {
		return answer{err: err}
	}
	f := strings.Fields(line) // NAME LOCAL from REMOTE
	if len(f) != 4 || f[2] != "from" {
		t.Fatalf("banner %q", line)
	}
	return answer{name: f[0], local: netip.MustParseAddrPort(f[1]), src: netip.MustParseAddrPort(f[3])}
}

// one returns the path's only outcome, failing unless the walk was sure.
func one(t *testing.T, what string, p *firewall.Path) firewall.Outcome {
	t.Helper()
	if len(p.Outcomes) != 1 || !p.Certain() {
		var outs []string
		for _, o := range p.Outcomes {
			outs = append(outs, fmt.Sprintf("%s %v p=%.3f %v", o.Verdict, o.Dst, o.Probability, o.Assumed))
		}
		t.Fatalf("%s: outcomes %q, may match %v, problems %v", what, outs, p.MayMatch, p.Problems)
	}
	return p.Outcomes[0]
}

// A Docker host's rules, read from the kernel and walked, send each
// connection where the kernel does: to the container its DNAT names (the
// container's own server answers, on that address), to docker-proxy on
// the host when no rule translates (the proxy's connection comes from the
// bridge), to a stopped container's address that nothing owns any more.
func TestWalkDockerLab(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	for _, o := range []netlab.DockerOptions{
		{Version: netlab.Docker27}, {Version: netlab.Docker28}, {Version: netlab.Docker29},
		{Version: netlab.Docker28, NoProxy: true},
	} {
		name := o.Version.String()
		if o.NoProxy {
			name += " without proxy"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o.Containers = []netlab.ContainerOptions{
				{Name: "web", Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:80")},
					Publish: []netlab.Publish{{HostPort: 8080, ContainerPort: 80}}},
				{Name: "peer"},
				{Name: "old", Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:80")},
					Publish: []netlab.Publish{{HostPort: 8081, ContainerPort: 80}}, Stopped: true},
			}
			d := netlab.New(t).Docker(o)
			rs, host := readRules(t, d.Host), hostFacts(t, d.Host)
			web, old := d.Container("web"), d.Container("old")
			hostPort := netip.AddrPortFrom(d.HostAddr, 8080)
			fromClient := firewall.Conn{Src: d.ClientAddr, In: routeDev(d.Host, d.ClientAddr), Dst: hostPort}
			fromPeer := firewall.Conn{Src: d.Container("peer").Addr, In: d.Bridge, Dst: hostPort}
			for _, tc := range []struct {
				name string
				from *netlab.Host
				c    firewall.Conn
			}{
				{"host to HOST:8080", d.Host, firewall.Conn{Local: true, Dst: hostPort}},
				{"host to 127.0.0.1:8080", d.Host, firewall.Conn{Local: true, Dst: netip.MustParseAddrPort("127.0.0.1:8080")}},
				{"client to HOST:8080", d.Client, fromClient},
				{"container to HOST:8080", d.Container("peer").Host, fromPeer},
			} {
				o := one(t, tc.name, firewall.Walk(rs, tc.c, host))
				a := connect(t, tc.from, tc.c.Dst, 8*time.Second)
				switch {
				case a.err != nil:
					t.Errorf("%s: %v; the walk says %s %v", tc.name, a.err, o.Verdict, o.Dst)
				case o.Verdict != "accept":
					t.Errorf("%s: the walk says %s, but %s answered", tc.name, o.Verdict, a.name)
				case o.Translation != nil:
					// The kernel translated: the container answers on the
					// walk's address.
					if a.local != o.Dst || a.name != "web" {
						t.Errorf("%s: the walk says %v (by %q); %s answered on %v", tc.name, o.Dst, o.Translation.Text, a.name, a.local)
					}
				default:
					// Nothing translated: a socket of the host took it,
					// docker-proxy, whose own connection comes from the
					// bridge.
					if !o.Local || o.Dst != tc.c.Dst || a.src.Addr() != d.Gateway || a.local != netip.AddrPortFrom(web.Addr, 80) {
						t.Errorf("%s: the walk says %v local=%v untranslated; %s answered on %v from %v", tc.name, o.Dst, o.Local, a.name, a.local, a.src)
					}
				}
			}
			// The stopped container's rule stays: the walk follows it to
			// an address no one has, and the kernel finds no one there.
			c := firewall.Conn{Local: true, Dst: netip.AddrPortFrom(d.HostAddr, 8081)}
			o := one(t, "host to a stopped container", firewall.Walk(rs, c, host))
			if o.Translation == nil || o.Dst != netip.AddrPortFrom(old.Addr, 80) || o.Local {
				t.Errorf("stopped container: the walk says %v local=%v translated=%v", o.Dst, o.Local, o.Translation != nil)
			}
			a := connect(t, d.Host, c.Dst, 8*time.Second)
			if !errors.Is(a.err, syscall.EHOSTUNREACH) {
				t.Errorf("stopped container: %v, want host-unreachable", a)
			}
		})
	}
}

// A Kubernetes node's rules (kube-proxy, iptables mode): a Service's
// ClusterIP and NodePort are split between its endpoints, and every
// connection lands on one the walk names, each with a third of the
// chance; a Service without endpoints is rejected by the rule the walk
// quotes, and the kernel refuses it.
func TestWalkKubeLab(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	port8080 := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:8080")}
	k := netlab.New(t).Kube(netlab.KubeOptions{
		Pods: []netlab.PodOptions{{Name: "web-a", Listen: port8080}, {Name: "web-b", Listen: port8080}, {Name: "web-c", Listen: port8080}, {Name: "caller"}},
		Services: []netlab.ServiceOptions{
			{Name: "web", PortName: "http", Port: 80, TargetPort: 8080, NodePort: 30080, Endpoints: []string{"web-a", "web-b", "web-c"}},
			{Name: "empty", PortName: "http", Port: 80, NodePort: 30081},
		},
	})
	web, empty := k.Service("default/web:http"), k.Service("default/empty:http")
	var endpoints []netip.AddrPort
	for _, p := range web.Endpoints {
		endpoints = append(endpoints, netip.AddrPortFrom(p.Addr, 8080))
	}
	checkKube(t, k, readRules(t, k.Node), hostFacts(t, k.Node), kubeCases{
		web: netip.AddrPortFrom(web.ClusterIP, 80), webNodePort: 30080, endpoints: endpoints,
		empty: netip.AddrPortFrom(empty.ClusterIP, 80), emptyNodePort: 30081,
		noEndpoints: `default/empty:http has no endpoints`,
	})
}

// The same node with kube-proxy in nftables mode: the rules of
// testdata/nft-kube.txt (its "table ip kube-proxy", service maps and all)
// loaded on a node whose pods are those it names.
func TestWalkKubeNftLab(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	port8080 := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:8080")}
	k := netlab.New(t).Kube(netlab.KubeOptions{
		Pods: []netlab.PodOptions{{Name: "web-a", Listen: port8080}, {Name: "web-b", Listen: port8080}, {Name: "web-c", Listen: port8080}, {Name: "caller"}},
	})
	script, err := os.ReadFile("testdata/nft-kube.txt")
	if err != nil {
		t.Fatal(err)
	}
	var endpoints []netip.AddrPort
	for _, name := range []string{"web-a", "web-b", "web-c"} {
		ep := netip.AddrPortFrom(k.Pod(name).Addr, 8080)
		if !strings.Contains(string(script), "dnat to "+ep.String()) {
			t.Fatalf("testdata/nft-kube.txt has no endpoint %v for pod %s", ep, name)
		}
		endpoints = append(endpoints, ep)
	}
	k.Node.Nft(t, strings.ReplaceAll(string(script), "198.18.0.2", k.NodeAddr.String()))
	rs := readRules(t, k.Node)
	if rs.Table("ip kube-proxy") == nil {
		t.Fatalf("no table ip kube-proxy read: %+v", rs.Notes)
	}
	checkKube(t, k, rs, hostFacts(t, k.Node), kubeCases{
		web: netip.MustParseAddrPort("198.19.2.10:80"), webNodePort: 30080, endpoints: endpoints,
		empty: netip.MustParseAddrPort("198.19.2.12:80"), emptyNodePort: 30081,
		noEndpoints: "default/empty:http",
	})
}

type kubeCases struct {
	web                        netip.AddrPort // a ClusterIP with endpoints
	webNodePort, emptyNodePort uint16
	endpoints                  []netip.AddrPort
	empty                      netip.AddrPort // one without
	noEndpoints                string         // the comment that says so
}

func checkKube(t *testing.T, k *netlab.Kube, rs *firewall.Ruleset, host firewall.Host, kc kubeCases) {
	caller := k.Pod("caller")
	toNode := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(k.NodeAddr, port) }
	clientIn := routeDev(k.Node, k.ClientAddr)
	for _, tc := range []struct {
		name string
		from *netlab.Host
		c    firewall.Conn
		all  bool // every endpoint must answer within 30 connections
	}{
		{"node to ClusterIP", k.Node, firewall.Conn{Local: true, Dst: kc.web}, true},
		{"client to NodePort", k.Client, firewall.Conn{Src: k.ClientAddr, In: clientIn, Dst: toNode(kc.webNodePort)}, false},
		{"client to ClusterIP through the node", k.Client, firewall.Conn{Src: k.ClientAddr, In: clientIn, Dst: kc.web}, false},
		{"pod to ClusterIP", caller.Host, firewall.Conn{Src: caller.Addr, In: caller.Veth, Dst: kc.web}, false},
	} {
		p := firewall.Walk(rs, tc.c, host)
		var dsts []netip.AddrPort
		for _, o := range p.Outcomes {
			if o.Verdict != "accept" || o.Translation == nil || o.Probability < 0.3 || o.Probability > 0.34 {
				t.Errorf("%s: outcome %s %v p=%.3f", tc.name, o.Verdict, o.Dst, o.Probability)
			}
			dsts = append(dsts, o.Dst)
		}
		slices.SortFunc(dsts, netip.AddrPort.Compare)
		if !p.Certain() || !slices.Equal(dsts, kc.endpoints) {
			t.Fatalf("%s: the walk gives %v (may match %v, problems %v), want %v", tc.name, dsts, p.MayMatch, p.Problems, kc.endpoints)
		}
		seen := map[netip.AddrPort]bool{}
		for range 30 {
			a := connect(t, tc.from, tc.c.Dst, 8*time.Second)
			if a.err != nil || !slices.Contains(dsts, a.local) {
				t.Fatalf("%s: %v answered; the walk says one of %v", tc.name, a, dsts)
			}
			if seen[a.local] = true; !tc.all || len(seen) == len(dsts) {
				break
			}
		}
		if tc.all && len(seen) != len(dsts) {
			t.Errorf("%s: 30 connections reached %v of %v", tc.name, seen, dsts)
		}
	}
	for _, tc := range []struct {
		name string
		from *netlab.Host
		c    firewall.Conn
	}{
		{"node to a Service without endpoints", k.Node, firewall.Conn{Local: true, Dst: kc.empty}},
		{"client to its NodePort", k.Client, firewall.Conn{Src: k.ClientAddr, In: clientIn, Dst: toNode(kc.emptyNodePort)}},
	} {
		o := one(t, tc.name, firewall.Walk(rs, tc.c, host))
		if o.Verdict != "reject" || o.Comment != kc.noEndpoints || o.Decider == nil {
			t.Errorf("%s: the walk says %s (comment %q)", tc.name, o.Verdict, o.Comment)
		}
		if a := connect(t, tc.from, tc.c.Dst, 8*time.Second); !errors.Is(a.err, syscall.ECONNREFUSED) {
			t.Errorf("%s: %v, want refused", tc.name, a)
		}
	}
}

// Docker's nftables backend (testdata/nft-docker.txt, "table ip
// docker-bridges") loaded on a Docker host whose container publishes
// nothing through iptables: the host's connection to its published port
// goes where the walk says, and a client's, translated too, is dropped by
// the iptables rules that still guard the bridge, as the walk says.
func TestWalkDockerNftLab(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	d := netlab.New(t).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{
		{Name: "web", Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:80")}}}})
	script, err := os.ReadFile("testdata/nft-docker.txt")
	if err != nil {
		t.Fatal(err)
	}
	web := d.Container("web")
	if !strings.Contains(string(script), "dnat to "+netip.AddrPortFrom(web.Addr, 80).String()) {
		t.Fatalf("testdata/nft-docker.txt does not publish %v", web.Addr)
	}
	d.Host.Nft(t, string(script))
	rs, host := readRules(t, d.Host), hostFacts(t, d.Host)
	hostPort := netip.AddrPortFrom(d.HostAddr, 8080)

	o := one(t, "host to HOST:8080", firewall.Walk(rs, firewall.Conn{Local: true, Dst: hostPort}, host))
	if a := connect(t, d.Host, hostPort, 8*time.Second); a.err != nil || o.Translation == nil || a.local != o.Dst {
		t.Errorf("host to HOST:8080: the walk says %v; %v answered", o.Dst, a)
	}
	c := firewall.Conn{Src: d.ClientAddr, In: routeDev(d.Host, d.ClientAddr), Dst: hostPort}
	o = one(t, "client to HOST:8080", firewall.Walk(rs, c, host))
	if o.Verdict != "drop" || o.Translation == nil || o.Dst != netip.AddrPortFrom(web.Addr, 80) || o.Decider == nil || o.Decider.Source != firewall.Iptables {
		t.Errorf("client to HOST:8080: the walk says %s %v (by %v)", o.Verdict, o.Dst, o.Decider != nil && o.Decider.Source == firewall.Iptables)
	}
	if a := connect(t, d.Client, hostPort, 1500*time.Millisecond); !errors.Is(a.err, context.DeadlineExceeded) && !errors.Is(a.err, os.ErrDeadlineExceeded) {
		t.Errorf("client to HOST:8080: %v, want a timeout (dropped)", a)
	}
}
