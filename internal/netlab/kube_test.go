//go:build linux

package netlab_test

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
)

var port8080 = netip.MustParseAddrPort("0.0.0.0:8080")

// kubeLab is a node with three web pods behind Service default/web:http
// (NodePort 30080), a pod listening on its own loopback behind
// default/local:http, Service default/empty:http (NodePort 30081) with no
// ready endpoints, and a pod that only connects.
func kubeLab(t *testing.T, mode netlab.KubeProxyMode) *netlab.Kube {
	t.Helper()
	return netlab.New(t).Kube(netlab.KubeOptions{
		Mode: mode,
		Pods: []netlab.PodOptions{
			{Name: "web-a", Listen: []netip.AddrPort{port8080}},
			{Name: "web-b", Listen: []netip.AddrPort{port8080}},
			{Name: "web-c", Listen: []netip.AddrPort{port8080}},
			{Name: "local", Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8080")}},
			{Name: "caller"},
		},
		Services: []netlab.ServiceOptions{
			{Name: "web", PortName: "http", Port: 80, TargetPort: 8080, NodePort: 30080, Endpoints: []string{"web-a", "web-b", "web-c"}},
			{Name: "local", PortName: "http", Port: 80, TargetPort: 8080, Endpoints: []string{"local"}},
			{Name: "empty", PortName: "http", Port: 80, NodePort: 30081},
		},
	})
}

// packets returns the packet counter iptables-save -c shows for rule.
func packets(t *testing.T, h *netlab.Host, table, rule string) int {
	t.Helper()
	saved := h.Run(t, "iptables-save", "-c", "-t", table)
	re := regexp.MustCompile(`(?m)^\[(\d+):\d+\] ` + regexp.QuoteMeta(rule) + `$`)
	m := re.FindStringSubmatch(saved)
	if m == nil {
		t.Fatalf("rule %q not in iptables-save -c -t %s:\n%s", rule, table, saved)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// icmpUnreachSent is how many ICMP destination-unreachable messages h has
// sent, from /proc/net/snmp.
func icmpUnreachSent(t *testing.T, h *netlab.Host) int {
	t.Helper()
	var head []string
	for line := range strings.Lines(h.Run(t, "cat", "/proc/net/snmp")) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, name := range head {
			if name == "OutDestUnreachs" && i < len(f) {
				n, _ := strconv.Atoi(f[i])
				return n
			}
		}
	}
	t.Fatalf("no Icmp OutDestUnreachs in %s's /proc/net/snmp", h.Name())
	return 0
}

// Connections to a Service go where kube-proxy's rules send them, in both
// of its modes: split between the ready endpoints, from the node, from
// another host (NodePort and ClusterIP) and from a pod; refused through
// DNAT by a pod bound to its loopback; and refused by an ICMP the node
// sends for a Service with no endpoints (kube-proxy's reject).
func TestKubeTraffic(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	for _, mode := range []netlab.KubeProxyMode{netlab.KubeIPTables, netlab.KubeNFTables} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			kubeTraffic(t, kubeLab(t, mode))
		})
	}
}

func kubeTraffic(t *testing.T, k *netlab.Kube) {
	web, local, empty := k.Service("default/web:http"), k.Service("default/local:http"), k.Service("default/empty:http")
	if web == nil || local == nil || empty == nil {
		t.Fatalf("services %v", k.Services)
	}
	webIP := netip.AddrPortFrom(web.ClusterIP, 80)
	pods := map[string]bool{}
	for _, p := range web.Endpoints {
		pods[p.Name+" "+netip.AddrPortFrom(p.Addr, 8080).String()] = true
	}
	masqueraded := " from " + k.Gateway.String()
	caller := k.Pod("caller")
	for _, tc := range []struct {
		from     *netlab.Host
		to       netip.AddrPort
		from2    string // the source address the pod sees
		name     string
		allThree bool
	}{
		{k.Node, webIP, masqueraded, "node -> ClusterIP", true},
		{k.Client, netip.AddrPortFrom(k.NodeAddr, 30080), masqueraded, "client -> NodePort", false},
		{k.Client, webIP, masqueraded, "client -> ClusterIP through the node", false},
		{caller.Host, webIP, " from " + caller.Addr.String(), "pod -> ClusterIP", false},
	} {
		seen := map[string]bool{}
		for range 30 {
			got := outcome(t, tc.from, tc.to)
			who, src, ok := strings.Cut(got, " from ")
			if !ok || !pods[who] || " from "+src != tc.from2 {
				t.Fatalf("%s: %s; want one of the web pods, from %s", tc.name, got, strings.TrimPrefix(tc.from2, " from "))
			}
			seen[who] = true
			if len(seen) == 3 {
				break
			}
		}
		if tc.allThree && len(seen) != 3 {
			t.Errorf("%s: 30 connections reached only %v of the three endpoints", tc.name, seen)
		}
	}
	for i, sep := range web.EndpointChains {
		if k.Mode != netlab.KubeIPTables {
			break // kube-proxy's nft rules keep no counters
		}
		ep := netip.AddrPortFrom(web.Endpoints[i].Addr, 8080)
		if n := packets(t, k.Node, "nat", `-A `+sep+` -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination `+ep.String()); n == 0 {
			t.Errorf("endpoint chain %s counted no packet", sep)
		}
	}

	if got := outcome(t, k.Node, netip.AddrPortFrom(local.ClusterIP, 80)); got != "refused" {
		t.Errorf("node -> ClusterIP of a pod bound to its loopback: %s, want refused", got)
	}
	for _, tc := range []struct {
		from *netlab.Host
		to   netip.AddrPort
		rule int
	}{
		{k.Node, netip.AddrPortFrom(empty.ClusterIP, 80), 0},
		{k.Client, netip.AddrPortFrom(empty.ClusterIP, 80), 0},
		{k.Client, netip.AddrPortFrom(k.NodeAddr, 30081), 1},
	} {
		before, icmp := 0, icmpUnreachSent(t, k.Node)
		if k.Mode == netlab.KubeIPTables {
			before = packets(t, k.Node, "filter", empty.Reject[tc.rule])
		}
		if got := outcome(t, tc.from, tc.to); got != "refused" {
			t.Errorf("%s -> %v (no endpoints): %s, want refused", tc.from.Name(), tc.to, got)
		}
		if sent := icmpUnreachSent(t, k.Node) - icmp; sent < 1 {
			t.Errorf("%s -> %v: refused, but the node sent no ICMP unreachable (a reset, not kube-proxy's reject)", tc.from.Name(), tc.to)
		}
		if k.Mode == netlab.KubeIPTables {
			if after := packets(t, k.Node, "filter", empty.Reject[tc.rule]); after <= before {
				t.Errorf("%s -> %v: the REJECT rule %q counted no packet", tc.from.Name(), tc.to, empty.Reject[tc.rule])
			}
		}
	}
}

// The rules are kube-proxy's own shapes, and iptables-save prints each of
// them back as written.
func TestKubeRules(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	k := kubeLab(t, netlab.KubeIPTables)
	web, empty := k.Service("default/web:http"), k.Service("default/empty:http")
	a, b, c := web.EndpointChains[0], web.EndpointChains[1], web.EndpointChains[2]
	want := map[string][]string{
		"nat": {
			`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
			`-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
			`-A KUBE-SERVICES -d 198.19.2.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j ` + web.Chain,
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
			`-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport 30080 -j KUBE-EXT-` + web.Chain[len("KUBE-SVC-"):],
			`-A ` + web.Chain + ` ! -s 198.19.1.0/24 -d 198.19.2.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
			`-A ` + web.Chain + ` -m comment --comment "default/web:http -> 198.19.1.2:8080" -m statistic --mode random --probability 0.33333333349 -j ` + a,
			`-A ` + web.Chain + ` -m comment --comment "default/web:http -> 198.19.1.3:8080" -m statistic --mode random --probability 0.50000000000 -j ` + b,
			`-A ` + web.Chain + ` -m comment --comment "default/web:http -> 198.19.1.4:8080" -j ` + c,
			`-A ` + a + ` -s 198.19.1.2/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ`,
			`-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000`,
			`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
		},
		"filter": {
			`-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
			`-A KUBE-SERVICES -d 198.19.2.12/32 -p tcp -m comment --comment "default/empty:http has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable`,
			`-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/empty:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30081 -j REJECT --reject-with icmp-port-unreachable`,
		},
	}
	for table, lines := range want {
		saved := k.Node.Run(t, "iptables-save", "-t", table)
		for _, line := range append(lines, k.Rules.Lines(table)...) {
			if !strings.Contains(saved, line+"\n") {
				t.Errorf("iptables-save -t %s lacks %q:\n%s", table, line, saved)
			}
		}
	}
	if !regexp.MustCompile(`^KUBE-SVC-[A-Z2-7]{16}$`).MatchString(web.Chain) || len(web.EndpointChains) != 3 || a == b {
		t.Errorf("chains %s %v", web.Chain, web.EndpointChains)
	}
	if len(empty.Reject) != 2 || empty.ClusterIPRule != "" || empty.EndpointChains != nil || strings.Contains(k.Rules.Text, empty.Chain) {
		t.Errorf("a Service without endpoints has nat rules: %+v", empty)
	}
	if web.ClusterIPRule == "" || web.NodePortRule == "" || web.Reject != nil {
		t.Errorf("web: %+v", web)
	}
}

// In nftables mode the table holds kube-proxy's maps, chains and elements,
// as nft lists them back.
func TestKubeNFTRules(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	k := kubeLab(t, netlab.KubeNFTables)
	web, empty := k.Service("default/web:http"), k.Service("default/empty:http")
	listed := k.Node.Run(t, "nft", "list", "table", "ip", "kube-proxy")
	for _, want := range []string{
		`comment "rules for kube-proxy"`,
		"chain " + web.Chain + " {",
		"ip daddr 198.19.2.10 ip saddr != 198.19.1.0/24 jump mark-for-masquerade",
		"numgen random mod 3 vmap { 0 : goto " + web.EndpointChains[0] + ", 1 : goto " + web.EndpointChains[1] + ", 2 : goto " + web.EndpointChains[2] + " }",
		"chain " + web.EndpointChains[0] + " {",
		"meta l4proto tcp dnat to 198.19.1.2:8080",
		"198.19.2.10 . tcp . 80 : goto " + web.Chain,
		"tcp . 30080 : goto external-" + strings.TrimPrefix(web.Chain, "service-"),
		`198.19.2.12 . tcp . 80 comment "default/empty:http" : goto reject-chain`,
		`tcp . 30081 comment "default/empty:http" : goto reject-chain`,
		`ip daddr 198.19.2.0/24 drop comment "Drop traffic to unallocated ClusterIPs"`,
		"elements = { " + k.NodeAddr.String() + " }",
	} {
		if !strings.Contains(listed, want) {
			t.Errorf("nft list table ip kube-proxy lacks %q:\n%s", want, listed)
		}
	}
	if !strings.HasPrefix(web.Chain, "service-") || !strings.HasSuffix(web.Chain, "-default/web/tcp/http") ||
		!strings.HasSuffix(web.EndpointChains[1], "-default/web/tcp/http__198.19.1.3/8080") {
		t.Errorf("chains %s %v", web.Chain, web.EndpointChains)
	}
	if len(empty.Reject) != 2 || web.Reject != nil || web.NodePortRule == "" {
		t.Errorf("empty.Reject %q, web %+v", empty.Reject, web)
	}
	if out := k.Node.Run(t, "iptables-save"); strings.Contains(out, "KUBE-") {
		t.Errorf("nftables mode wrote iptables rules:\n%s", out)
	}
}
