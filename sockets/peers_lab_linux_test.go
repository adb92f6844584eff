package sockets

import (
	"encoding/json"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
)

// From a Docker host, the peers are its containers (on docker0) and the
// client on its link, each with its addresses and listeners; a stopped
// container left nothing, and the namespaces of another lab on the same
// machine are not peers, though they hold the same addresses.
func TestListPeers(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	port80 := netip.MustParseAddrPort("0.0.0.0:80")
	d := netlab.New(t).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{
		{Name: "web", Listen: []netip.AddrPort{port80}},
		{Name: "gone", Listen: []netip.AddrPort{port80}, Stopped: true},
	}})
	// Another Docker host on this machine, with a container at the same address.
	other := netlab.New(t).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{{Name: "web", Listen: []netip.AddrPort{port80}}}})

	var ps Peers
	err := d.Host.Do(func() (err error) {
		ps, err = ListPeers(t.Context(), Options{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	web := d.Container("web")
	byName := map[string]Peer{}
	for _, p := range ps.Peers {
		byName[p.Namespace.Name] = p
	}
	if len(ps.Peers) != 2 {
		t.Errorf("%d peers, want web and the client: %+v", len(ps.Peers), ps.Peers)
	}
	w, ok := byName[web.Host.Name()]
	switch {
	case !ok:
		t.Fatalf("web's namespace %s is not a peer: %+v", web.Host.Name(), ps.Peers)
	case !w.Has(web.Addr) || w.Link != web.Veth || w.Bridge != "docker0":
		t.Errorf("web: %+v, want %v on %s in docker0", w, web.Addr, web.Veth)
	}
	if c, ok := byName[d.Client.Name()]; !ok || c.Bridge != "" || !c.Has(d.ClientAddr) {
		t.Errorf("client: %+v (found %v)", c, ok)
	}
	if _, ok := byName[other.Container("web").Host.Name()]; ok {
		t.Errorf("another lab's container is a peer")
	}
	// Go listens on [::] for 0.0.0.0 where IPv6 works.
	i := slices.IndexFunc(ps.Sockets, func(s Socket) bool { return s.Local.Port() == 80 && s.Local.Addr().IsUnspecified() })
	if i < 0 {
		t.Fatalf("no listener on %v among %v", port80, ps.Sockets)
	}
	s := ps.Sockets[i]
	if s.Namespace == nil || s.Namespace.Name != web.Host.Name() || len(s.Processes) == 0 ||
		s.Processes[0].Command != "netlab-server" || s.Processes[0].PID != web.Server.Pid {
		t.Errorf("listener %v: namespace %+v, processes %+v", s, s.Namespace, s.Processes)
	}
	if len(ps.NotSeen) > 0 || len(ps.Warnings) > 0 {
		t.Errorf("not seen %+v, warnings %q", ps.NotSeen, ps.Warnings)
	}
}

// A namespace with no veth has no peers, and finding that reads nothing else.
func TestListPeersNone(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	h := netlab.New(t).Host("alone")
	var ps Peers
	if err := h.Do(func() (err error) { ps, err = ListPeers(t.Context(), Options{}); return err }); err != nil {
		t.Fatal(err)
	}
	if len(ps.Peers) != 0 || len(ps.NotSeen) != 0 || ps.Peers == nil || ps.Sockets == nil {
		t.Errorf("alone: %+v", ps)
	}
}

// Without root the namespaces at the far end of the veths stay hidden, and
// ListPeers says which pair leads where it could not look.
func TestListPeersUnprivileged(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	d := netlab.New(t).Docker(netlab.DockerOptions{Containers: []netlab.ContainerOptions{
		{Name: "web", Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:80")}}}})
	out := runAsNobodyIn(t, d.Host, helperEnv+"=peers")
	var ps Peers
	if err := json.Unmarshal(out, &ps); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Its name in /run/netns lets nobody find it, not enter it.
	web := d.Container("web").Host.Name()
	if len(ps.Peers) != 0 || !slices.ContainsFunc(ps.NotSeen, func(n NotSeen) bool {
		return n.Reason == NotSeenPermission && n.Namespace.Name == web
	}) || !slices.ContainsFunc(ps.Warnings, func(w string) bool { return strings.Contains(w, web) && strings.Contains(w, "CAP_SYS_ADMIN") }) {
		t.Errorf("as nobody: %+v, want web's namespace %s named as not entered", ps, web)
	}
}

// A veth whose far namespace no process is in and no name holds (here only
// a file descriptor of this process keeps it) is said to lead where reach
// could not look.
func TestListPeersUnfound(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	h, hidden := lab.Host("h"), lab.Host("hidden")
	lab.Link(h, hidden)
	ns, err := sys.OpenNetns("/run/netns/" + hidden.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if out, err := exec.Command("ip", "netns", "del", hidden.Name()).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	var ps Peers
	if err := h.Do(func() (err error) { ps, err = ListPeers(t.Context(), Options{}); return err }); err != nil {
		t.Fatal(err)
	}
	// Where some processes are hidden even from root (a sandbox), it may
	// be among theirs.
	if len(ps.Peers) != 0 || len(ps.NotSeen) != 1 || len(ps.Warnings) != 1 ||
		!strings.Contains(ps.NotSeen[0].Error, "leads to a network namespace") ||
		ps.NotSeen[0].Reason == NotSeenError && !strings.Contains(ps.NotSeen[0].Error, "no process and no name") {
		t.Errorf("%+v", ps)
	}
}
