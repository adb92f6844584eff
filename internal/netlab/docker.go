package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// DockerVersion picks the generation of Docker's iptables rules a Docker
// lab writes. Docker rewrote them twice in 2025, and hosts run all three.
type DockerVersion int

const (
	// Docker28 is Docker 28.x (the zero value): FORWARD jumps to
	// DOCKER-USER and DOCKER-FORWARD, which runs DOCKER-CT,
	// DOCKER-ISOLATION-STAGE-1 and DOCKER-BRIDGE; the raw table drops
	// packets sent from elsewhere straight to a container's address.
	Docker28 DockerVersion = iota
	// Docker27 is Docker 17.06 to 27.x: FORWARD itself jumps to
	// DOCKER-USER, DOCKER-ISOLATION-STAGE-1 and DOCKER, with RETURN rules
	// closing the user and isolation chains; no raw rules.
	Docker27
	// Docker29 is Docker 29.x with its iptables backend: DOCKER-INTERNAL
	// replaces the isolation chains, and the nat DOCKER chain has no
	// RETURN rule for the bridge.
	Docker29
)

func (v DockerVersion) String() string {
	switch v {
	case Docker27:
		return "Docker 27"
	case Docker29:
		return "Docker 29"
	}
	return "Docker 28"
}

// DockerOptions lays out one Docker host.
type DockerOptions struct {
	Version DockerVersion
	// NoProxy is dockerd --userland-proxy=false: no docker-proxy processes;
	// instead OUTPUT jumps to DOCKER for loopback addresses too, the
	// bridge gets route_localnet=1, and traffic from the host and from a
	// container to its own published port is masqueraded.
	NoProxy bool
	// NFTables is dockerd --firewall-backend=nftables (Docker 29, where it
	// is experimental): table ip docker-bridges instead of iptables rules,
	// and FORWARD's policy left alone. It implies Docker29.
	NFTables   bool
	Containers []ContainerOptions
}

// ContainerOptions is one container (docker run).
type ContainerOptions struct {
	Name string // short lowercase name, also the container's host name in the lab
	// Listen are the addresses its server (a netlab-server process inside
	// the container) listens on: "0.0.0.0:80", "127.0.0.1:80" (reachable
	// only from inside), ... None: nothing listens.
	Listen []netip.AddrPort
	// Publish are its -p options.
	Publish []Publish
	// Stopped leaves the container's rules in place but deletes its
	// namespace once they are written (the veth goes with it), as when a
	// container dies while its DNAT rule stays: its address then belongs
	// to no one.
	Stopped bool
}

// Publish is one -p [HOST-IP:]HOST-PORT:CONTAINER-PORT (tcp).
type Publish struct {
	HostIP        netip.Addr // the zero Addr publishes on every address, as 0.0.0.0 does
	HostPort      uint16
	ContainerPort uint16
}

func (p Publish) String() string {
	s := fmt.Sprintf("%d:%d", p.HostPort, p.ContainerPort)
	if p.HostIP.IsValid() {
		s = p.HostIP.String() + ":" + s
	}
	return s
}

// Docker is a Docker host built by Lab.Docker.
type Docker struct {
	Host *Host // dockerd's host: the bridge, the rules, docker-proxy
	// Client is another host on a link to Host; from there, HostAddr is
	// the Docker host's address ("HOSTIP").
	Client               *Host
	HostAddr, ClientAddr netip.Addr
	Bridge               string       // "docker0"
	Subnet               netip.Prefix // 198.19.0.0/24
	Gateway              netip.Addr   // 198.19.0.1, the bridge's address
	Containers           []*Container
	// Rules are the rules written in Host: iptables rules (filter, nat
	// and, from Docker 28, raw) in iptables-save's own form, or with
	// NFTables the table ip docker-bridges as nft lists it (less the
	// counters' values).
	Rules    *Rules
	Version  DockerVersion
	NoProxy  bool
	NFTables bool
	Backend  string // the iptables backend: "nf_tables" or "legacy"
}

// Container is one container of a Docker lab.
type Container struct {
	Name string
	ID   string // 64 hex digits, as docker inspect shows it
	// Host is the container's network namespace. A stopped container's
	// has been deleted: do not use it.
	Host    *Host
	Addr    netip.Addr // on the bridge: 198.19.0.2, .3, ...
	Veth    string     // the host end of its veth, on the bridge
	Listen  []netip.AddrPort
	Publish []Publish
	// DNAT holds, for each Publish, the rule that translates it: as
	// iptables-save prints it, or with NFTables the rule of chain
	// nat-prerouting-and-output.
	DNAT []string
	// Server is the process listening inside (nil without Listen, or
	// when stopped); Proxies the docker-proxy process of each Publish
	// (nil entries with NoProxy).
	Server  *Process
	Proxies []*Process
	Stopped bool
}

// Container returns the container called name, or nil.
func (d *Docker) Container(name string) *Container {
	for _, c := range d.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// dockerSubnet is the lab's docker0 subnet: the first /24 of 198.19.0.0/16.
var dockerSubnet = netip.MustParsePrefix("198.19.0.0/24")

// Docker lays out a Docker host as dockerd does, inside the lab: host
// "docker" with a bridge docker0 at 198.19.0.1/24 and forwarding on; one
// namespace per container behind a veth on the bridge, at 198.19.0.2, .3,
// ... in the order given; the iptables rules of o.Version for the bridge
// and each published port (FORWARD's policy set to DROP, as dockerd does
// when it turns forwarding on), or its nftables table; a docker-proxy process per published port
// unless NoProxy; and host "client" on a link to the Docker host.
//
// Unlike Docker, containers get no default route, only one to the lab's
// 198.18.0.0/15 through the bridge, so nothing they send can leave the lab.
func (l *Lab) Docker(o DockerOptions) *Docker {
	t := l.t
	t.Helper()
	backend, err := IptablesBackend()
	if err != nil {
		t.Fatal(err)
	}
	l.reserve(t, dockerSubnet)
	d := &Docker{
		Host: l.Host("docker"), Client: l.Host("client"),
		Bridge: "docker0", Subnet: dockerSubnet, Gateway: nth(dockerSubnet, 1),
		Version: o.Version, NoProxy: o.NoProxy, NFTables: o.NFTables, Backend: backend,
	}
	if o.NFTables {
		d.Version = Docker29
	}
	d.ClientAddr, d.HostAddr = l.Link(d.Client, d.Host)
	h := d.Host
	l.ip("-n", h.name, "link", "add", d.Bridge, "type", "bridge")
	l.ip("-n", h.name, "addr", "add", netip.PrefixFrom(d.Gateway, d.Subnet.Bits()).String(), "dev", d.Bridge)
	l.ip("-n", h.name, "link", "set", d.Bridge, "up")
	h.Sysctl(t, "net.ipv4.ip_forward", "1")
	if o.NoProxy {
		h.Sysctl(t, "net.ipv4.conf."+d.Bridge+".route_localnet", "1")
		// A container's connection to its neighbour's published port is
		// translated by the host, and the reply bridged straight back: only
		// br_netfilter shows it to conntrack to translate back. dockerd
		// loads the module for this.
		if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
			t.Fatalf("netlab: Docker without userland proxy needs br_netfilter, as dockerd does (modprobe br_netfilter): %v", err)
		}
		h.Sysctl(t, "net.bridge.bridge-nf-call-iptables", "1")
	}

	if len(o.Containers) > 250 {
		t.Fatalf("netlab: %d containers; a Docker lab holds up to 250", len(o.Containers))
	}
	for _, co := range o.Containers {
		for _, p := range co.Publish {
			if p.HostPort == 0 || p.ContainerPort == 0 || p.HostIP.IsValid() && !p.HostIP.Is4() {
				t.Fatalf("netlab: container %s: -p %v: give both ports, and an IPv4 host address if any", co.Name, p)
			}
		}
	}
	for i, co := range o.Containers {
		c := &Container{
			Name: co.Name, ID: randomHex(32), Host: l.Host(co.Name),
			Addr: nth(d.Subnet, byte(i+2)), Listen: co.Listen, Publish: co.Publish,
		}
		c.Veth = "veth" + c.ID[:7]
		l.addVeth(h, c.Veth, c.Host, "eth0")
		l.ip("-n", h.name, "link", "set", c.Veth, "master", d.Bridge, "up")
		l.ip("-n", c.Host.name, "addr", "add", netip.PrefixFrom(c.Addr, d.Subnet.Bits()).String(), "dev", "eth0")
		l.ip("-n", c.Host.name, "link", "set", "eth0", "up")
		l.waitUp(h, c.Veth)
		l.waitUp(c.Host, "eth0")
		c.Host.AddRoute(t, labNet.String(), "via", d.Gateway.String())
		d.Containers = append(d.Containers, c)
	}
	l.waitUp(h, d.Bridge)

	if d.NFTables {
		d.Rules = h.ApplyRules(t, NFTables, dockerNFTRules(d))
	} else {
		d.Rules = h.ApplyRules(t, IPTables, dockerRules(d).String())
	}

	for i, co := range o.Containers {
		c := d.Containers[i]
		if co.Stopped {
			c.Host.Delete(t)
			c.Stopped = true
		} else if len(co.Listen) > 0 {
			c.Server = c.Host.Serve(t, c.Name, co.Listen...)
		}
		c.Proxies = make([]*Process, len(co.Publish))
		if o.NoProxy {
			continue
		}
		for j, p := range co.Publish {
			hostIP := "0.0.0.0"
			if p.HostIP.IsValid() {
				hostIP = p.HostIP.String()
			}
			c.Proxies[j] = h.startRole(t, roleProxy,
				"-proto", "tcp", "-host-ip", hostIP, "-host-port", strconv.Itoa(int(p.HostPort)),
				"-container-ip", c.Addr.String(), "-container-port", strconv.Itoa(int(p.ContainerPort)))
		}
	}
	return d
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dockerRules writes the rules dockerd of d.Version writes for d's bridge
// and containers, in iptables-save's form, and fills each container's
// DNAT. The shapes follow moby's own generated documentation of its rules
// (integration/network/bridge/iptablesdoc) for 28 and 29, and its 27.5
// sources.
func dockerRules(d *Docker) *ruleset {
	br, sub, v := d.Bridge, d.Subnet.String(), d.Version
	var rs ruleset
	raw, filter, nat := rs.table("raw"), rs.table("filter"), rs.table("nat")
	if v == Docker27 {
		rs.tables = rs.tables[1:] // no raw rules before 28
	}

	filter.policy("FORWARD", "DROP")
	switch v {
	case Docker27:
		filter.chain("DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER")
		filter.add("FORWARD", "-j DOCKER-USER")
		filter.add("FORWARD", "-j DOCKER-ISOLATION-STAGE-1")
		filter.add("FORWARD", "-o "+br+" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
		filter.add("FORWARD", "-o "+br+" -j DOCKER")
		filter.add("FORWARD", "-i "+br+" ! -o "+br+" -j ACCEPT")
		filter.add("FORWARD", "-i "+br+" -o "+br+" -j ACCEPT")
		filter.add("DOCKER-ISOLATION-STAGE-1", "-i "+br+" ! -o "+br+" -j DOCKER-ISOLATION-STAGE-2")
		filter.add("DOCKER-ISOLATION-STAGE-1", "-j RETURN")
		filter.add("DOCKER-ISOLATION-STAGE-2", "-o "+br+" -j DROP")
		filter.add("DOCKER-ISOLATION-STAGE-2", "-j RETURN")
		filter.add("DOCKER-USER", "-j RETURN")
	default:
		middle := "DOCKER-ISOLATION-STAGE-1"
		if v == Docker29 {
			middle = "DOCKER-INTERNAL"
			filter.chain("DOCKER", "DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD", "DOCKER-INTERNAL", "DOCKER-USER")
		} else {
			filter.chain("DOCKER", "DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD",
				"DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER")
		}
		filter.add("FORWARD", "-j DOCKER-USER")
		filter.add("FORWARD", "-j DOCKER-FORWARD")
		filter.add("DOCKER", "! -i "+br+" -o "+br+" -j DROP")
		filter.add("DOCKER-BRIDGE", "-o "+br+" -j DOCKER")
		filter.add("DOCKER-CT", "-o "+br+" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
		filter.add("DOCKER-FORWARD", "-j DOCKER-CT")
		filter.add("DOCKER-FORWARD", "-j "+middle)
		filter.add("DOCKER-FORWARD", "-j DOCKER-BRIDGE")
		filter.add("DOCKER-FORWARD", "-i "+br+" -j ACCEPT")
		if v == Docker28 {
			filter.add("DOCKER-ISOLATION-STAGE-1", "-i "+br+" ! -o "+br+" -j DOCKER-ISOLATION-STAGE-2")
			filter.add("DOCKER-ISOLATION-STAGE-2", "-o "+br+" -j DROP")
		}
	}

	nat.chain("DOCKER")
	nat.add("PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER")
	if d.NoProxy {
		nat.add("OUTPUT", "-m addrtype --dst-type LOCAL -j DOCKER")
		nat.add("POSTROUTING", "-o "+br+" -m addrtype --src-type LOCAL -j MASQUERADE")
	} else {
		nat.add("OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER")
	}
	nat.add("POSTROUTING", "-s "+sub+" ! -o "+br+" -j MASQUERADE")
	if !d.NoProxy && v != Docker29 {
		nat.add("DOCKER", "-i "+br+" -j RETURN")
	}

	for _, c := range d.Containers {
		a := c.Addr.String()
		if v != Docker27 {
			raw.add("PREROUTING", "-d "+a+"/32 ! -i "+br+" -j DROP")
		}
		for _, p := range c.Publish {
			hp, cp := strconv.Itoa(int(p.HostPort)), strconv.Itoa(int(p.ContainerPort))
			accept := "-d " + a + "/32 ! -i " + br + " -o " + br + " -p tcp -m tcp --dport " + cp + " -j ACCEPT"
			if v == Docker27 {
				filter.add("DOCKER", accept)
			} else {
				filter.insert("DOCKER", accept) // above the bridge's DROP
			}
			dnat := ""
			if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
				dnat = "-d " + p.HostIP.String() + "/32 "
			}
			if !d.NoProxy {
				dnat += "! -i " + br + " "
			}
			dnat += "-p tcp -m tcp --dport " + hp + " -j DNAT --to-destination " + netip.AddrPortFrom(c.Addr, p.ContainerPort).String()
			nat.add("DOCKER", dnat)
			c.DNAT = append(c.DNAT, "-A DOCKER "+dnat)
			if v == Docker27 || d.NoProxy {
				nat.add("POSTROUTING", "-s "+a+"/32 -d "+a+"/32 -p tcp -m tcp --dport "+cp+" -j MASQUERADE")
			}
			if v != Docker27 && p.HostIP.Is4() && p.HostIP.IsLoopback() {
				raw.add("PREROUTING", "-d "+p.HostIP.String()+"/32 ! -i lo -p tcp -m tcp --dport "+hp+" -j DROP")
			}
		}
	}
	return &rs
}

// dockerNFTRules writes table ip docker-bridges as dockerd 29 with
// --firewall-backend=nftables writes it for d's bridge and containers (its
// own generated documentation, integration/network/bridge/nftablesdoc),
// and fills each container's DNAT.
func dockerNFTRules(d *Docker) string {
	br, sub := strconv.Quote(d.Bridge), d.Subnet.String()
	var dnat, raw, in, postIn []string
	for _, c := range d.Containers {
		a := c.Addr.String()
		raw = append(raw, "ip daddr "+a+" iifname != "+br+` counter drop comment "DROP DIRECT ACCESS"`)
		for _, p := range c.Publish {
			hp, cp := strconv.Itoa(int(p.HostPort)), strconv.Itoa(int(p.ContainerPort))
			rule := ""
			if !d.NoProxy {
				rule = "iifname != " + br + " "
			}
			if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
				rule += "ip daddr " + p.HostIP.String() + " "
			}
			rule += "tcp dport " + hp + " counter dnat to " + netip.AddrPortFrom(c.Addr, p.ContainerPort).String() + ` comment "DNAT"`
			dnat = append(dnat, rule)
			c.DNAT = append(c.DNAT, rule)
			in = append(in, "ip daddr "+a+" tcp dport "+cp+" counter accept")
			if d.NoProxy {
				postIn = append(postIn, "ip saddr "+a+" ip daddr "+a+" tcp dport "+cp+` counter masquerade comment "MASQ TO OWN PORT"`)
			}
			if p.HostIP.Is4() && p.HostIP.IsLoopback() {
				raw = append(raw, `iifname != "lo" ip daddr `+p.HostIP.String()+" tcp dport "+hp+` counter drop comment "DROP REMOTE LOOPBACK"`)
			}
		}
	}
	if d.NoProxy {
		postIn = append([]string{`fib saddr type local counter masquerade comment "MASQUERADE FROM HOST"`}, postIn...)
	}
	output := "ip daddr != 127.0.0.0/8 fib daddr type local counter jump nat-prerouting-and-output"
	if d.NoProxy {
		output = "fib daddr type local counter jump nat-prerouting-and-output"
	}
	var b strings.Builder
	jumps := func(name, chain string) {
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype ifname : verdict\n\t\telements = { %s : jump %s__%s }\n\t}\n\n", name, br, chain, d.Bridge)
	}
	chain := func(name, hook string, rules ...string) {
		fmt.Fprintf(&b, "\tchain %s {\n", name)
		if hook != "" {
			fmt.Fprintf(&b, "\t\t%s\n", hook)
		}
		for _, r := range rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n\n")
	}
	b.WriteString("table ip docker-bridges {\n")
	jumps("filter-forward-in-jumps", "filter-forward-in")
	jumps("filter-forward-out-jumps", "filter-forward-out")
	jumps("nat-postrouting-in-jumps", "nat-postrouting-in")
	jumps("nat-postrouting-out-jumps", "nat-postrouting-out")
	chain("filter-forward-in__"+d.Bridge, "", append(append([]string{
		"ct state established,related counter accept",
		"iifname " + br + ` counter accept comment "ICC"`}, in...),
		`counter drop comment "UNPUBLISHED PORT DROP"`)...)
	chain("filter-forward-out__"+d.Bridge, "", "ct state established,related counter accept", `counter accept comment "OUTGOING"`)
	chain("nat-postrouting-in__"+d.Bridge, "", postIn...)
	chain("nat-postrouting-out__"+d.Bridge, "", "oifname != "+br+" ip saddr "+sub+` counter masquerade comment "MASQUERADE"`)
	chain("nat-prerouting-and-output", "", dnat...)
	chain("filter-FORWARD", "type filter hook forward priority filter; policy accept;",
		"oifname vmap @filter-forward-in-jumps", "iifname vmap @filter-forward-out-jumps")
	// -100 is dstnat, a name nft before 1.0.7 takes only on prerouting.
	chain("nat-OUTPUT", "type nat hook output priority -100; policy accept;", output)
	chain("nat-POSTROUTING", "type nat hook postrouting priority srcnat; policy accept;",
		"iifname vmap @nat-postrouting-out-jumps", "oifname vmap @nat-postrouting-in-jumps")
	chain("nat-PREROUTING", "type nat hook prerouting priority dstnat; policy accept;",
		"fib daddr type local counter jump nat-prerouting-and-output")
	chain("raw-PREROUTING", "type filter hook prerouting priority raw; policy accept;", raw...)
	b.WriteString("}\n")
	return b.String()
}
