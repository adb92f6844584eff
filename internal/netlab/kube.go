package netlab

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// KubeProxyMode is kube-proxy's --proxy-mode.
type KubeProxyMode int

const (
	// KubeIPTables is iptables mode (the zero value): chains in the
	// filter and nat tables.
	KubeIPTables KubeProxyMode = iota
	// KubeNFTables is nftables mode (GA in Kubernetes 1.33): one table,
	// ip kube-proxy, with verdict maps.
	KubeNFTables
)

func (m KubeProxyMode) String() string {
	if m == KubeNFTables {
		return "nftables"
	}
	return "iptables"
}

// KubeOptions lays out one Kubernetes node as kube-proxy programs it.
type KubeOptions struct {
	Mode KubeProxyMode
	// Pods are namespaces on the node's pod bridge, cni0.
	Pods []PodOptions
	// Services are TCP Service ports; their ready endpoints are pods.
	Services []ServiceOptions
}

// PodOptions is one pod.
type PodOptions struct {
	Name string // short lowercase name, also its host name in the lab
	// Listen are the addresses its server (a netlab-server process)
	// listens on, e.g. 0.0.0.0:8080 or 127.0.0.1:8080. None: nothing.
	Listen []netip.AddrPort
}

// ServiceOptions is one port of a Service, with its ready endpoints.
type ServiceOptions struct {
	Namespace string // "default" if empty
	Name      string
	PortName  string // "http"; may be empty, as for a Service with one unnamed port
	Port      uint16 // the Service port on its ClusterIP
	// TargetPort is the endpoints' port (Port if zero); NodePort, if not
	// zero, makes it a NodePort Service.
	TargetPort, NodePort uint16
	// Endpoints name the pods that are ready endpoints. None: the Service
	// has no endpoints, and kube-proxy rejects its traffic.
	Endpoints []string
}

// Kube is a Kubernetes node built by Lab.Kube.
type Kube struct {
	Node *Host // the node: cni0, kube-proxy's rules
	// Client is another host on a link to Node (another machine of the
	// network, with routes to the pod and service ranges through Node);
	// NodeAddr is the node's address there.
	Client               *Host
	NodeAddr, ClientAddr netip.Addr
	Bridge               string       // "cni0"
	PodCIDR              netip.Prefix // 198.19.1.0/24, the node's pods
	ServiceCIDR          netip.Prefix // 198.19.2.0/24, the ClusterIPs
	Gateway              netip.Addr   // 198.19.1.1, cni0's address
	Pods                 []*Pod
	Services             []*Service
	// Rules are what kube-proxy writes in Node: in iptables mode its
	// filter and nat rules, with kubelet's KUBE-FIREWALL, in
	// iptables-save's form; in nftables mode the nft commands that build
	// table ip kube-proxy.
	Rules   *Rules
	Mode    KubeProxyMode
	Backend string // the iptables backend: "nf_tables" or "legacy"
}

// Pod is one pod of a Kube lab.
type Pod struct {
	Name   string
	ID     string     // 64 hex digits, like a container runtime's sandbox id
	Host   *Host      // the pod's network namespace
	Addr   netip.Addr // 198.19.1.2, .3, ...
	Veth   string     // the node end of its veth, on cni0
	Listen []netip.AddrPort
	Server *Process // nil without Listen
}

// Service is one Service port of a Kube lab.
type Service struct {
	Namespace, Name, PortName string
	// ServicePortName is kube-proxy's name for this Service port,
	// "NAMESPACE/NAME:PORTNAME" (or "NAMESPACE/NAME"): its rules'
	// comments quote it.
	ServicePortName  string
	ClusterIP        netip.Addr // 198.19.2.10, .11, ...
	Port, TargetPort uint16
	NodePort         uint16
	Endpoints        []*Pod
	// Chain is its service chain, KUBE-SVC-<hash> (iptables mode) or
	// service-<hash>-NS/NAME/tcp/PORTNAME (nftables mode), named even
	// when no rule uses it; EndpointChains are its KUBE-SEP-<hash> or
	// endpoint-<hash>-... chains, one per endpoint, in order.
	Chain          string
	EndpointChains []string
	// With no endpoints, Reject holds what rejects its traffic: the
	// filter rules with "has no endpoints" (iptables mode, as
	// iptables-save prints them), or the no-endpoint-services and
	// no-endpoint-nodeports elements (nftables mode, as written).
	Reject []string
	// ClusterIPRule and NodePortRule capture it (empty without endpoints,
	// or without a NodePort): the nat rules (iptables mode) or the
	// service-ips and service-nodeports elements (nftables mode).
	ClusterIPRule, NodePortRule string
}

var (
	kubePodCIDR     = netip.MustParsePrefix("198.19.1.0/24")
	kubeServiceCIDR = netip.MustParsePrefix("198.19.2.0/24")
)

// Kube lays out a Kubernetes node with kube-proxy in o.Mode, as a kind or
// kubeadm node runs it, inside the lab: host "node" with a pod
// bridge cni0 at 198.19.1.1/24 and forwarding on; one namespace per pod
// behind a veth on cni0, at 198.19.1.2, .3, ... in the order given; a
// ClusterIP per Service from 198.19.2.10 on; the rules kube-proxy writes
// for them (cluster CIDR 198.19.1.0/24; in iptables mode with localhost
// NodePorts on, so route_localnet=1, and kubelet's KUBE-FIREWALL; in
// nftables mode NodePorts on the node's link address); and host "client"
// on a link to the node.
//
// Unlike a real node, the node has no default route: the service range
// is routed to an empty bridge, "uplink", in its place (either way, only
// kube-proxy's DNAT gives a ClusterIP an endpoint); and pods get a route
// to the lab's 198.18.0.0/15 through cni0, not a default route.
func (l *Lab) Kube(o KubeOptions) *Kube {
	t := l.t
	t.Helper()
	backend, err := IptablesBackend()
	if err != nil {
		t.Fatal(err)
	}
	// kube-proxy needs br_netfilter (kubeadm's preflight checks it): a
	// pod's connection to a Service endpoint on the same bridge is
	// translated by the node, and only br_netfilter shows the bridged
	// reply to conntrack.
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		t.Fatalf("netlab: a Kubernetes node needs br_netfilter (modprobe br_netfilter): %v", err)
	}
	l.reserve(t, kubePodCIDR)
	l.reserve(t, kubeServiceCIDR)
	k := &Kube{
		Node: l.Host("node"), Client: l.Host("client"), Bridge: "cni0",
		PodCIDR: kubePodCIDR, ServiceCIDR: kubeServiceCIDR, Gateway: nth(kubePodCIDR, 1),
		Backend: backend, Mode: o.Mode,
	}
	k.ClientAddr, k.NodeAddr = l.Link(k.Client, k.Node)
	n := k.Node
	l.ip("-n", n.name, "link", "add", k.Bridge, "type", "bridge")
	l.ip("-n", n.name, "addr", "add", netip.PrefixFrom(k.Gateway, k.PodCIDR.Bits()).String(), "dev", k.Bridge)
	l.ip("-n", n.name, "link", "set", k.Bridge, "up")
	n.Sysctl(t, "net.ipv4.ip_forward", "1")
	if o.Mode == KubeIPTables {
		n.Sysctl(t, "net.ipv4.conf.all.route_localnet", "1") // localhost NodePorts
	}
	n.Sysctl(t, "net.bridge.bridge-nf-call-iptables", "1")
	// The service range leaves by "uplink", an empty bridge standing in
	// for the node's default route (kernels may lack the dummy device):
	// only kube-proxy's DNAT gives a ClusterIP an endpoint, and what it
	// does not translate goes nowhere. (Routed back to the client, whence
	// forwarded packets came, a REJECT's ICMP would lose to the kernel's
	// rate limit against the redirect it sends first.)
	l.ip("-n", n.name, "link", "add", "uplink", "type", "bridge")
	l.ip("-n", n.name, "link", "set", "uplink", "up")
	n.AddRoute(t, k.ServiceCIDR.String(), "dev", "uplink")
	k.Client.AddRoute(t, k.PodCIDR.String(), "via", k.NodeAddr.String())
	k.Client.AddRoute(t, k.ServiceCIDR.String(), "via", k.NodeAddr.String())

	if len(o.Pods) > 250 || len(o.Services) > 240 {
		t.Fatalf("netlab: a Kube lab holds up to 250 pods and 240 services")
	}
	for i, po := range o.Pods {
		p := &Pod{Name: po.Name, ID: randomHex(32), Host: l.Host(po.Name), Addr: nth(k.PodCIDR, byte(i+2)), Listen: po.Listen}
		p.Veth = "veth" + p.ID[:8]
		l.addVeth(n, p.Veth, p.Host, "eth0")
		l.ip("-n", n.name, "link", "set", p.Veth, "master", k.Bridge, "up")
		l.ip("-n", p.Host.name, "addr", "add", netip.PrefixFrom(p.Addr, k.PodCIDR.Bits()).String(), "dev", "eth0")
		l.ip("-n", p.Host.name, "link", "set", "eth0", "up")
		l.waitUp(n, p.Veth)
		l.waitUp(p.Host, "eth0")
		p.Host.AddRoute(t, labNet.String(), "via", k.Gateway.String())
		k.Pods = append(k.Pods, p)
	}
	if len(k.Pods) > 0 {
		l.waitUp(n, k.Bridge)
	}
	for i, so := range o.Services {
		s := &Service{
			Namespace: so.Namespace, Name: so.Name, PortName: so.PortName,
			ClusterIP: nth(k.ServiceCIDR, byte(i+10)), Port: so.Port, TargetPort: so.TargetPort, NodePort: so.NodePort,
		}
		if s.Namespace == "" {
			s.Namespace = "default"
		}
		if s.Port == 0 || s.Name == "" {
			t.Fatalf("netlab: service %+v: give it a name and a port", so)
		}
		if s.TargetPort == 0 {
			s.TargetPort = s.Port
		}
		s.ServicePortName = s.Namespace + "/" + s.Name
		if s.PortName != "" {
			s.ServicePortName += ":" + s.PortName
		}
		for _, name := range so.Endpoints {
			p := k.Pod(name)
			if p == nil {
				t.Fatalf("netlab: service %s: endpoint %q is not a pod of this lab", s.ServicePortName, name)
			}
			s.Endpoints = append(s.Endpoints, p)
		}
		k.Services = append(k.Services, s)
	}

	if o.Mode == KubeNFTables {
		k.Rules = n.ApplyRules(t, NFTables, kubeNFTRules(k))
	} else {
		k.Rules = n.ApplyRules(t, IPTables, kubeRules(k).String())
	}
	for _, p := range k.Pods {
		if len(p.Listen) > 0 {
			p.Server = p.Host.Serve(t, p.Name, p.Listen...)
		}
	}
	return k
}

// Pod returns the pod called name, or nil.
func (k *Kube) Pod(name string) *Pod {
	for _, p := range k.Pods {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Service returns the Service port whose ServicePortName is name
// ("default/web:http"), or nil.
func (k *Kube) Service(name string) *Service {
	for _, s := range k.Services {
		if s.ServicePortName == name {
			return s
		}
	}
	return nil
}

// kubeHash is kube-proxy's chain-name hash: the first 16 characters of the
// base32 (standard alphabet) encoding of the SHA-256 of what names the
// chain ("ns/svc:port" and the protocol, and for an endpoint chain the
// endpoint "ip:port"). Chain names are 28 characters at most.
func kubeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// kubeProbability is how iptables-save prints the probability kube-proxy
// writes for the i-th of n endpoints (1/(n-i), to ten decimals): the
// statistic match keeps it as a fraction of 2^31 and prints that to eleven.
func kubeProbability(left int) string {
	written, _ := strconv.ParseFloat(fmt.Sprintf("%0.10f", 1/float64(left)), 64)
	return fmt.Sprintf("%.11f", math.Round(written*0x80000000)/0x80000000)
}

// kubeRules writes kube-proxy's rules (iptables mode) for k, with the
// kubelet's KUBE-FIREWALL, in iptables-save's form, and fills each
// Service's chains and rules. The shapes follow kube-proxy's proxier
// (pkg/proxy/iptables): its jump rules are prepended to the built-in
// chains, kubelet's KUBE-FIREWALL jumps appended before them.
func kubeRules(k *Kube) *ruleset {
	const (
		masq   = "0x4000/0x4000"
		portal = `-m comment --comment "kubernetes service portals"`
		lbfw   = `-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`
	)
	var rs ruleset
	filter, nat := rs.table("filter"), rs.table("nat")
	filter.chain("KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-NODEPORTS",
		"KUBE-PROXY-FIREWALL", "KUBE-SERVICES")
	filter.add("INPUT", lbfw)
	filter.add("INPUT", `-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS`)
	filter.add("INPUT", `-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`)
	filter.add("INPUT", "-j KUBE-FIREWALL")
	filter.add("FORWARD", lbfw)
	filter.add("FORWARD", `-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`)
	filter.add("FORWARD", "-m conntrack --ctstate NEW "+portal+" -j KUBE-SERVICES")
	filter.add("FORWARD", `-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`)
	filter.add("OUTPUT", lbfw)
	filter.add("OUTPUT", "-m conntrack --ctstate NEW "+portal+" -j KUBE-SERVICES")
	filter.add("OUTPUT", "-j KUBE-FIREWALL")
	filter.add("KUBE-FIREWALL", `! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`)
	filter.add("KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
	filter.add("KUBE-FORWARD", `-m comment --comment "kubernetes forwarding rules" -m mark --mark `+masq+` -j ACCEPT`)
	filter.add("KUBE-FORWARD", `-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`)

	nat.chain("KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-SERVICES")
	nat.add("PREROUTING", portal+" -j KUBE-SERVICES")
	nat.add("OUTPUT", portal+" -j KUBE-SERVICES")
	nat.add("POSTROUTING", `-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`)
	nat.add("KUBE-MARK-MASQ", "-j MARK --set-xmark "+masq)
	nat.add("KUBE-POSTROUTING", "-m mark ! --mark "+masq+" -j RETURN")
	nat.add("KUBE-POSTROUTING", "-j MARK --set-xmark 0x4000/0x0")
	nat.add("KUBE-POSTROUTING", `-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`)

	for _, s := range k.Services {
		name := s.ServicePortName
		hash := kubeHash(name + "tcp")
		s.Chain = "KUBE-SVC-" + hash
		cip, port := s.ClusterIP.String()+"/32", strconv.Itoa(int(s.Port))
		np := strconv.Itoa(int(s.NodePort))
		if len(s.Endpoints) == 0 {
			reject := `-d ` + cip + ` -p tcp -m comment --comment "` + name + ` has no endpoints" -m tcp --dport ` + port + ` -j REJECT --reject-with icmp-port-unreachable`
			filter.add("KUBE-SERVICES", reject)
			s.Reject = append(s.Reject, "-A KUBE-SERVICES "+reject)
			if s.NodePort != 0 {
				ext := `-p tcp -m comment --comment "` + name + ` has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport ` + np + ` -j REJECT --reject-with icmp-port-unreachable`
				filter.add("KUBE-EXTERNAL-SERVICES", ext)
				s.Reject = append(s.Reject, "-A KUBE-EXTERNAL-SERVICES "+ext)
			}
			continue
		}
		clusterIP := `-d ` + cip + ` -p tcp -m comment --comment "` + name + ` cluster IP" -m tcp --dport ` + port
		nat.chain(s.Chain)
		nat.add("KUBE-SERVICES", clusterIP+" -j "+s.Chain)
		s.ClusterIPRule = "-A KUBE-SERVICES " + clusterIP + " -j " + s.Chain
		if s.NodePort != 0 {
			ext := "KUBE-EXT-" + hash
			nat.chain(ext)
			rule := `-p tcp -m comment --comment "` + name + `" -m tcp --dport ` + np + " -j " + ext
			nat.add("KUBE-NODEPORTS", rule)
			s.NodePortRule = "-A KUBE-NODEPORTS " + rule
			nat.add(ext, `-m comment --comment "masquerade traffic for `+name+` external destinations" -j KUBE-MARK-MASQ`)
			nat.add(ext, "-j "+s.Chain)
		}
		nat.add(s.Chain, "! -s "+k.PodCIDR.String()+" "+clusterIP+" -j KUBE-MARK-MASQ")
		for i, p := range s.Endpoints {
			ep := netip.AddrPortFrom(p.Addr, s.TargetPort).String()
			sep := "KUBE-SEP-" + kubeHash(name+"tcp"+ep)
			s.EndpointChains = append(s.EndpointChains, sep)
			split := ""
			if i < len(s.Endpoints)-1 {
				split = " -m statistic --mode random --probability " + kubeProbability(len(s.Endpoints)-i)
			}
			nat.add(s.Chain, `-m comment --comment "`+name+" -> "+ep+`"`+split+" -j "+sep)
			nat.chain(sep)
			nat.add(sep, "-s "+p.Addr.String()+`/32 -m comment --comment "`+name+`" -j KUBE-MARK-MASQ`)
			nat.add(sep, `-p tcp -m comment --comment "`+name+`" -m tcp -j DNAT --to-destination `+ep)
		}
	}
	nat.add("KUBE-SERVICES", `-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`)
	return &rs
}

// kubeNFTHash is kube-proxy's nftables chain-name base: the first 8
// characters of the base32 SHA-256 of name, a dash, and name
// ("ULMVA6XW-ns1/svc1/tcp/p80"). Names here are short enough never to be
// truncated.
func kubeNFTHash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
}

// kubeNFTRules writes the nft commands kube-proxy (nftables mode) runs for
// k, and fills each Service's chains and elements. The shapes follow
// kube-proxy's proxier (pkg/proxy/nftables) and its tests' base ruleset.
func kubeNFTRules(k *Kube) string {
	var b strings.Builder
	add := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	const tbl = "ip kube-proxy"
	add(`add table %s { comment "rules for kube-proxy" ; }`, tbl)
	add(`add set %s cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }`, tbl)
	add(`add set %s nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }`, tbl)
	add(`add map %s firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`, tbl)
	add(`add map %s no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`, tbl)
	add(`add map %s no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`, tbl)
	add(`add map %s service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`, tbl)
	add(`add map %s service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`, tbl)
	for _, c := range []string{
		"cluster-ips-check",
		"filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }",
		"filter-output-pre-dnat { type filter hook output priority -110 ; }",
		"filter-forward { type filter hook forward priority 0 ; }",
		"filter-input { type filter hook input priority 0 ; }",
		"filter-output { type filter hook output priority 0 ; }",
		"firewall-check", "mark-for-masquerade", "masquerading",
		"nat-output { type nat hook output priority -100 ; }",
		"nat-postrouting { type nat hook postrouting priority 100 ; }",
		"nat-prerouting { type nat hook prerouting priority -100 ; }",
		"nodeport-endpoints-check",
		`reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`,
		"services", "service-endpoints-check",
	} {
		add("add chain %s %s", tbl, c)
	}
	for _, r := range []string{
		`cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
		`cluster-ips-check ip daddr { ` + k.ServiceCIDR.String() + ` } drop comment "Drop traffic to unallocated ClusterIPs"`,
		"filter-prerouting-pre-dnat ct state new jump firewall-check",
		"filter-forward ct state new jump service-endpoints-check",
		"filter-forward ct state new jump cluster-ips-check",
		"filter-input ct state new jump nodeport-endpoints-check",
		"filter-input ct state new jump service-endpoints-check",
		"filter-output ct state new jump service-endpoints-check",
		"filter-output-pre-dnat ct state new jump firewall-check",
		"filter-output ct state new jump cluster-ips-check",
		"firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
		"mark-for-masquerade mark set mark or 0x4000",
		"masquerading mark and 0x4000 == 0 return",
		"masquerading mark set mark xor 0x4000",
		"masquerading masquerade fully-random",
		"nat-output jump services",
		"nat-postrouting jump masquerading",
		"nat-prerouting jump services",
		"nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports",
		"reject-chain reject",
		"services ip daddr . meta l4proto . th dport vmap @service-ips",
		"services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
	} {
		add("add rule %s %s", tbl, r)
	}
	add("add element %s nodeport-ips { %s }", tbl, k.NodeAddr)
	add("add rule %s service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services", tbl)

	for _, s := range k.Services {
		port := s.PortName
		base := kubeNFTHash(s.Namespace + "/" + s.Name + "/tcp/" + port)
		s.Chain = "service-" + base
		ext := "external-" + base
		cip := s.ClusterIP.String()
		b.WriteString("\n")
		if len(s.Endpoints) == 0 {
			add("add element %s cluster-ips { %s }", tbl, cip)
			s.Reject = append(s.Reject, fmt.Sprintf(`add element %s no-endpoint-services { %s . tcp . %d comment "%s" : goto reject-chain }`, tbl, cip, s.Port, s.ServicePortName))
			if s.NodePort != 0 {
				s.Reject = append(s.Reject, fmt.Sprintf(`add element %s no-endpoint-nodeports { tcp . %d comment "%s" : goto reject-chain }`, tbl, s.NodePort, s.ServicePortName))
			}
			for _, r := range s.Reject {
				add("%s", r)
			}
			continue
		}
		// Every chain before the rules that jump to it (kube-proxy's one
		// transaction creates them all first).
		add("add chain %s %s", tbl, s.Chain)
		var vmap []string
		for i, p := range s.Endpoints {
			chain := "endpoint-" + kubeNFTHash(s.Namespace+"/"+s.Name+"/tcp/"+port+"__"+p.Addr.String()+"/"+strconv.Itoa(int(s.TargetPort)))
			s.EndpointChains = append(s.EndpointChains, chain)
			vmap = append(vmap, fmt.Sprintf("%d : goto %s", i, chain))
			add("add chain %s %s", tbl, chain)
		}
		add("add rule %s %s ip daddr %s ip saddr != %s jump mark-for-masquerade", tbl, s.Chain, cip, k.PodCIDR)
		add("add rule %s %s numgen random mod %d vmap { %s }", tbl, s.Chain, len(s.Endpoints), strings.Join(vmap, " , "))
		if s.NodePort != 0 {
			add("add chain %s %s", tbl, ext)
			add("add rule %s %s jump mark-for-masquerade", tbl, ext)
			add("add rule %s %s goto %s", tbl, ext, s.Chain)
		}
		for i, p := range s.Endpoints {
			chain := s.EndpointChains[i]
			add("add rule %s %s ip saddr %s jump mark-for-masquerade", tbl, chain, p.Addr)
			add("add rule %s %s meta l4proto tcp dnat to %s", tbl, chain, netip.AddrPortFrom(p.Addr, s.TargetPort))
		}
		add("add element %s cluster-ips { %s }", tbl, cip)
		s.ClusterIPRule = fmt.Sprintf("add element %s service-ips { %s . tcp . %d : goto %s }", tbl, cip, s.Port, s.Chain)
		add("%s", s.ClusterIPRule)
		if s.NodePort != 0 {
			s.NodePortRule = fmt.Sprintf("add element %s service-nodeports { tcp . %d : goto %s }", tbl, s.NodePort, ext)
			add("%s", s.NodePortRule)
		}
	}
	return b.String()
}
