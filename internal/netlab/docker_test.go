//go:build linux

package netlab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// outcome connects from h to addr and says what happened: the banner of
// the server reached, without the source port ("web 198.19.0.2:80 from
// 198.18.0.1"), or refused, host-unreachable, closed (accepted, then closed
// before a byte), reset or timeout.
func outcome(t *testing.T, h *netlab.Host, addr netip.AddrPort) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancel()
	line, err := h.Banner(ctx, addr)
	switch {
	case err == nil:
		if i := strings.LastIndex(line, ":"); strings.Contains(line, " from ") && i > 0 {
			line = line[:i] // the client's port varies
		}
		return line
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host-unreachable"
	case errors.Is(err, io.EOF):
		return "closed"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return err.Error()
}

var (
	port80   = netip.MustParseAddrPort("0.0.0.0:80")
	local80  = netip.MustParseAddrPort("127.0.0.1:80")
	loopback = netip.MustParseAddr("127.0.0.1")
)

// Real connections go where the kernel sends them through Docker's rules,
// from the Docker host itself (OUTPUT), from its loopback (docker-proxy, or
// DNAT with route_localnet when there is no proxy), from another host
// (PREROUTING) and from another container on the bridge (hairpin).
func TestDockerTraffic(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	web := func(listen []netip.AddrPort, pub ...netlab.Publish) netlab.ContainerOptions {
		return netlab.ContainerOptions{Name: "web", Listen: listen, Publish: pub}
	}
	p8080 := netlab.Publish{HostPort: 8080, ContainerPort: 80}
	// Each want is keyed by where the connection comes from and goes to:
	// host->HOST (the Docker host to its own link address), host->lo
	// (127.0.0.1:8080), client->HOST, peer->HOST (another container).
	// HOST is the Docker host's link address, CLIENT the client's.
	const (
		webOK      = "web 198.19.0.2:80 from "
		fromBridge = webOK + "198.19.0.1"
		fromPeer   = webOK + "198.19.0.3"
	)
	for _, tc := range []struct {
		name string
		o    netlab.DockerOptions
		want map[string]string
	}{
		{"healthy", netlab.DockerOptions{Containers: []netlab.ContainerOptions{web([]netip.AddrPort{port80}, p8080)}},
			map[string]string{"host->HOST": webOK + "HOST", "host->lo": fromBridge, "client->HOST": webOK + "CLIENT", "peer->HOST": fromBridge}},
		{"healthy 27", netlab.DockerOptions{Version: netlab.Docker27, Containers: []netlab.ContainerOptions{web([]netip.AddrPort{port80}, p8080)}},
			map[string]string{"host->HOST": webOK + "HOST", "host->lo": fromBridge, "client->HOST": webOK + "CLIENT", "peer->HOST": fromBridge}},
		{"healthy 29", netlab.DockerOptions{Version: netlab.Docker29, Containers: []netlab.ContainerOptions{web([]netip.AddrPort{port80}, p8080)}},
			map[string]string{"host->HOST": webOK + "HOST", "host->lo": fromBridge, "client->HOST": webOK + "CLIENT", "peer->HOST": fromBridge}},
		{"no proxy", netlab.DockerOptions{NoProxy: true, Containers: []netlab.ContainerOptions{web([]netip.AddrPort{port80}, p8080)}},
			// Without the proxy the host's connections are masqueraded to
			// the bridge's address (src-type LOCAL), and the peer's reach
			// web translated, its own address kept (br_netfilter takes the
			// reply, bridged straight back to the peer, through conntrack).
			map[string]string{"host->HOST": fromBridge, "host->lo": fromBridge, "client->HOST": webOK + "CLIENT", "peer->HOST": fromPeer}},
		{"bound to the container's loopback", netlab.DockerOptions{Containers: []netlab.ContainerOptions{web([]netip.AddrPort{local80}, p8080)}},
			map[string]string{"host->HOST": "refused", "host->lo": "closed", "client->HOST": "refused"}},
		{"published to the wrong container port", netlab.DockerOptions{Containers: []netlab.ContainerOptions{
			web([]netip.AddrPort{port80}, netlab.Publish{HostPort: 8080, ContainerPort: 81})}},
			map[string]string{"host->HOST": "refused", "host->lo": "closed", "client->HOST": "refused"}},
		{"not published", netlab.DockerOptions{Containers: []netlab.ContainerOptions{web([]netip.AddrPort{port80})}},
			map[string]string{"host->HOST": "refused", "host->lo": "refused", "client->HOST": "refused"}},
		{"published on 127.0.0.1 only", netlab.DockerOptions{Containers: []netlab.ContainerOptions{
			web([]netip.AddrPort{port80}, netlab.Publish{HostIP: loopback, HostPort: 8080, ContainerPort: 80})}},
			map[string]string{"host->HOST": "refused", "host->lo": fromBridge, "client->HOST": "refused"}},
		{"published on 127.0.0.1 only, no proxy", netlab.DockerOptions{NoProxy: true, Containers: []netlab.ContainerOptions{
			web([]netip.AddrPort{port80}, netlab.Publish{HostIP: loopback, HostPort: 8080, ContainerPort: 80})}},
			map[string]string{"host->HOST": "refused", "host->lo": fromBridge, "client->HOST": "refused"}},
		{"nftables backend", netlab.DockerOptions{NFTables: true, Containers: []netlab.ContainerOptions{web([]netip.AddrPort{port80}, p8080)}},
			map[string]string{"host->HOST": webOK + "HOST", "host->lo": fromBridge, "client->HOST": webOK + "CLIENT", "peer->HOST": fromBridge}},
		{"nftables backend, no proxy", netlab.DockerOptions{NFTables: true, NoProxy: true, Containers: []netlab.ContainerOptions{web([]netip.AddrPort{port80}, p8080)}},
			map[string]string{"host->HOST": fromBridge, "host->lo": fromBridge, "client->HOST": webOK + "CLIENT", "peer->HOST": fromPeer}},
		{"nftables backend, loopback-bound, on 127.0.0.1 only", netlab.DockerOptions{NFTables: true, Containers: []netlab.ContainerOptions{
			web([]netip.AddrPort{local80}, netlab.Publish{HostIP: loopback, HostPort: 8080, ContainerPort: 80})}},
			map[string]string{"host->HOST": "refused", "host->lo": "closed", "client->HOST": "refused"}},
		{"stopped", netlab.DockerOptions{Containers: []netlab.ContainerOptions{
			{Name: "web", Listen: []netip.AddrPort{port80}, Publish: []netlab.Publish{p8080}, Stopped: true}}},
			map[string]string{"host->HOST": "host-unreachable", "client->HOST": "host-unreachable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			if _, ok := tc.want["peer->HOST"]; ok {
				o.Containers = append(o.Containers, netlab.ContainerOptions{Name: "peer"})
			}
			d := netlab.New(t).Docker(o)
			hostPort := netip.AddrPortFrom(d.HostAddr, 8080)
			from := map[string]func() string{
				"host->HOST":   func() string { return outcome(t, d.Host, hostPort) },
				"host->lo":     func() string { return outcome(t, d.Host, netip.AddrPortFrom(loopback, 8080)) },
				"client->HOST": func() string { return outcome(t, d.Client, hostPort) },
				"peer->HOST":   func() string { return outcome(t, d.Container("peer").Host, hostPort) },
			}
			for path, want := range tc.want {
				want = strings.NewReplacer("HOST", d.HostAddr.String(), "CLIENT", d.ClientAddr.String()).Replace(want)
				if got := from[path](); got != want {
					t.Errorf("%s: %s, want %s", path, got, want)
				}
			}
			if t.Failed() {
				t.Logf("rules:\n%s", d.Rules.Text)
			}
		})
	}
}

// The rules are Docker's own shapes, and iptables-save in the Docker host
// prints each of them back as written.
func TestDockerRules(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	pub := []netlab.Publish{{HostPort: 8080, ContainerPort: 80}, {HostIP: loopback, HostPort: 9090, ContainerPort: 90}}
	for _, tc := range []struct {
		name    string
		o       netlab.DockerOptions
		want    map[string][]string // table -> lines
		notWant []string
	}{
		{"28", netlab.DockerOptions{}, map[string][]string{
			"nat": {
				"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
				"-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
				"-A POSTROUTING -s 198.19.0.0/24 ! -o docker0 -j MASQUERADE",
				"-A DOCKER -i docker0 -j RETURN",
				"-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80",
				"-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 198.19.0.2:90",
			},
			"filter": {
				":FORWARD DROP [0:0]",
				"-A FORWARD -j DOCKER-USER",
				"-A FORWARD -j DOCKER-FORWARD",
				"-A DOCKER -d 198.19.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 90 -j ACCEPT",
				"-A DOCKER -d 198.19.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
				"-A DOCKER ! -i docker0 -o docker0 -j DROP",
				"-A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1",
				"-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
				"-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
				":DOCKER-USER - [0:0]",
			},
			"raw": {
				"-A PREROUTING -d 198.19.0.2/32 ! -i docker0 -j DROP",
				"-A PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 9090 -j DROP",
			},
		}, []string{"MASQUERADE --", "-A DOCKER-USER -j RETURN"}},
		{"27", netlab.DockerOptions{Version: netlab.Docker27}, map[string][]string{
			"nat": {
				"-A DOCKER -i docker0 -j RETURN",
				"-A POSTROUTING -s 198.19.0.2/32 -d 198.19.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
				"-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80",
			},
			"filter": {
				"-A FORWARD -j DOCKER-USER",
				"-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
				"-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				"-A FORWARD -o docker0 -j DOCKER",
				"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
				"-A FORWARD -i docker0 -o docker0 -j ACCEPT",
				"-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
				"-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
				"-A DOCKER-USER -j RETURN",
			},
		}, []string{"DOCKER-FORWARD", "*raw"}},
		{"29", netlab.DockerOptions{Version: netlab.Docker29}, map[string][]string{
			"filter": {"-A DOCKER-FORWARD -j DOCKER-INTERNAL", ":DOCKER-INTERNAL - [0:0]"},
			"nat":    {"-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80"},
		}, []string{"DOCKER-ISOLATION", "-j RETURN"}},
		{"no proxy", netlab.DockerOptions{NoProxy: true}, map[string][]string{
			"nat": {
				"-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER",
				"-A POSTROUTING -o docker0 -m addrtype --src-type LOCAL -j MASQUERADE",
				"-A POSTROUTING -s 198.19.0.2/32 -d 198.19.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
				"-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80",
			},
		}, []string{"-A DOCKER -i docker0 -j RETURN", "! -d 127.0.0.0/8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			o.Containers = []netlab.ContainerOptions{{Name: "web", Publish: pub}}
			d := netlab.New(t).Docker(o)
			for table, lines := range tc.want {
				saved := d.Host.Run(t, "iptables-save", "-t", table)
				for _, line := range lines {
					if !strings.Contains(saved, line+"\n") {
						t.Errorf("iptables-save -t %s lacks %q:\n%s", table, line, saved)
					}
				}
			}
			for _, table := range []string{"raw", "filter", "nat"} {
				saved := d.Host.Run(t, "iptables-save", "-t", table)
				for _, line := range d.Rules.Lines(table) {
					if !strings.Contains(saved, line+"\n") {
						t.Errorf("rule written as %q is printed otherwise by iptables-save -t %s:\n%s", line, table, saved)
					}
				}
			}
			for _, bad := range tc.notWant {
				if strings.Contains(d.Rules.Text, bad) {
					t.Errorf("rules contain %q:\n%s", bad, d.Rules.Text)
				}
			}
			web := d.Container("web")
			if len(web.DNAT) != 2 || !strings.Contains(d.Rules.Text, web.DNAT[0]+"\n") || !strings.Contains(web.DNAT[1], "--dport 9090") {
				t.Errorf("Container.DNAT %q does not match the rules written", web.DNAT)
			}
			if d.Backend == "" || len(web.ID) != 64 || !strings.HasPrefix(web.Veth, "veth"+web.ID[:7]) {
				t.Errorf("backend %q, id %q, veth %q", d.Backend, web.ID, web.Veth)
			}
		})
	}
}

// The processes are what the doctor will find in /proc: docker-proxy in the
// Docker host's namespace with docker-proxy's flags, the container's server
// in the container's namespace.
func TestDockerProcesses(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	d := lab.Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{{
		Name: "web", Listen: []netip.AddrPort{port80}, Publish: []netlab.Publish{{HostPort: 8080, ContainerPort: 80}},
	}}})
	web := d.Container("web")
	for _, tc := range []struct {
		p       *netlab.Process
		comm    string
		cmdline string
		host    *netlab.Host
	}{
		{web.Proxies[0], "docker-proxy", "-proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 198.19.0.2 -container-port 80", d.Host},
		{web.Server, "netlab-server", "-name web -listen 0.0.0.0:80", web.Host},
	} {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", tc.p.Pid))
		if err != nil || strings.TrimSpace(string(comm)) != tc.comm {
			t.Errorf("pid %d comm %q (%v), want %s", tc.p.Pid, comm, err, tc.comm)
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", tc.p.Pid))
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if !strings.Contains(args, "/"+tc.comm+" "+tc.cmdline) {
			t.Errorf("pid %d cmdline %q, want .../%s %s", tc.p.Pid, args, tc.comm, tc.cmdline)
		}
		if got, want := inode(t, fmt.Sprintf("/proc/%d/ns/net", tc.p.Pid)), inode(t, "/run/netns/"+tc.host.Name()); got != want {
			t.Errorf("%s (pid %d) in namespace %d, want %s's %d", tc.comm, tc.p.Pid, got, tc.host.Name(), want)
		}
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// With the nftables backend the rules are table ip docker-bridges, as
// dockerd 29 writes it, and no iptables rule at all.
func TestDockerNFTRules(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	d := netlab.New(t).Docker(netlab.DockerOptions{NFTables: true, Containers: []netlab.ContainerOptions{{
		Name: "web", Publish: []netlab.Publish{{HostPort: 8080, ContainerPort: 80}, {HostIP: loopback, HostPort: 9090, ContainerPort: 90}},
	}}})
	listed := d.Host.Run(t, "nft", "list", "table", "ip", "docker-bridges")
	listed = regexp.MustCompile(`counter packets \d+ bytes \d+`).ReplaceAllString(listed, "counter")
	web := d.Container("web")
	for _, want := range append([]string{
		"type nat hook prerouting priority dstnat; policy accept;",
		"fib daddr type local counter jump nat-prerouting-and-output",
		"ip daddr != 127.0.0.0/8 fib daddr type local counter jump nat-prerouting-and-output",
		`oifname != "docker0" ip saddr 198.19.0.0/24 counter masquerade comment "MASQUERADE"`,
		`ip daddr 198.19.0.2 iifname != "docker0" counter drop comment "DROP DIRECT ACCESS"`,
		`iifname != "lo" ip daddr 127.0.0.1 tcp dport 9090 counter drop comment "DROP REMOTE LOOPBACK"`,
		"ip daddr 198.19.0.2 tcp dport 80 counter accept",
		`counter drop comment "UNPUBLISHED PORT DROP"`,
		`elements = { "docker0" : jump filter-forward-in__docker0 }`,
		`iifname != "docker0" tcp dport 8080 counter dnat to 198.19.0.2:80 comment "DNAT"`,
		`iifname != "docker0" ip daddr 127.0.0.1 tcp dport 9090 counter dnat to 198.19.0.2:90 comment "DNAT"`,
	}, web.DNAT...) {
		if !strings.Contains(listed, want) {
			t.Errorf("nft list table ip docker-bridges lacks %q:\n%s", want, listed)
		}
	}
	if d.Version != netlab.Docker29 || d.Rules.Tool != netlab.NFTables || len(web.DNAT) != 2 {
		t.Errorf("version %v, tool %s, DNAT %q", d.Version, d.Rules.Tool, web.DNAT)
	}
	if out := d.Host.Run(t, "iptables-save"); strings.Contains(out, "DOCKER") {
		t.Errorf("the nftables backend wrote iptables rules:\n%s", out)
	}
}
