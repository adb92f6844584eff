package sockets

import (
	"net/netip"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
)

// A docker-proxy process, as a Docker lab runs it, is read back from /proc.
func TestProxyOf(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	d := netlab.New(t).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{{Name: "web",
		Publish: []netlab.Publish{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80}}}}})
	p := d.Container("web").Proxies[0]
	fw, ok := ProxyOf(p.Pid)
	want := Forward{Proxy: "docker-proxy", PID: p.Pid, Listen: netip.MustParseAddrPort("127.0.0.1:8080"),
		To: netip.AddrPortFrom(d.Container("web").Addr, 80)}
	if !ok || fw != want {
		t.Errorf("got %+v, %v; want %+v", fw, ok, want)
	}
	if _, ok := ProxyOf(d.Container("web").Proxies[0].Pid + 1<<22); ok {
		t.Errorf("a pid that does not exist is a proxy")
	}
}
