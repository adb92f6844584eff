package sockets

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/internal/testnet"
)

// startInNewNetns starts a child listening on every address (its loopback is
// down) in a network namespace of its own, unnamed, as a container's is. Go
// listens on [::] for it when IPv6 works, else on 0.0.0.0: anyPort matches
// either.
func startInNewNetns(t *testing.T) (*exec.Cmd, uint16) {
	t.Helper()
	return startListenerWith(t, "0.0.0.0:0", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL})
}

// anyPort is a port on no address in particular (see findSocket).
func anyPort(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.Addr{}, port) }

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	ino, err := sys.NetnsInode(path)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// findSocket returns the one socket with local address ap in the namespace
// with the given inode; an ap without address matches the port alone.
func findSocket(t *testing.T, tab Table, ino uint64, ap netip.AddrPort) Socket {
	t.Helper()
	var found []Socket
	for _, s := range tab.Sockets {
		if s.Namespace == nil {
			t.Fatalf("socket %v has no namespace", s)
		}
		if s.Namespace.Inode == ino && s.Local.Port() == ap.Port() && (!ap.Addr().IsValid() || s.Local.Addr() == ap.Addr()) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d sockets on %v in namespace %d, want 1; namespaces %+v", len(found), ap, ino, tab.Namespaces)
	}
	return found[0]
}

// TestListAllNamespaces lists a listener in reach's own namespace, one in a
// named lab namespace (held by this process), and one in an unnamed
// namespace of a child process: each with its namespace and owner.
func TestListAllNamespaces(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	a := lab.Host("a")
	labAddr := a.Listen(t, "tcp", "127.0.0.1:0").Addr().(*net.TCPAddr).AddrPort()
	rootAddr := testnet.AddrPort(testnet.Listen(t))
	child, childPort := startInNewNetns(t)
	childAddr := anyPort(childPort)

	tab, err := ListAllNamespaces(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	self := inodeOf(t, "/proc/self/ns/net")
	labNS := inodeOf(t, "/run/netns/"+a.Name())
	childNS := inodeOf(t, sys.NetnsPathOfPID(child.Process.Pid))
	if len(slices.Compact([]uint64{self, labNS, childNS})) != 3 {
		t.Fatalf("namespaces not distinct: %d %d %d", self, labNS, childNS)
	}

	s := findSocket(t, tab, self, rootAddr)
	if !s.Namespace.Self || s.Namespace.Path != "" || s.Namespace.Name != "" {
		t.Errorf("own namespace: %+v", *s.Namespace)
	}
	s = findSocket(t, tab, labNS, labAddr)
	if ns := *s.Namespace; ns.Name != a.Name() || ns.Path != "/run/netns/"+a.Name() || ns.Self || ns.Processes != 0 {
		t.Errorf("lab namespace: %+v", ns)
	}
	if len(s.Processes) != 1 || s.Processes[0].PID != os.Getpid() {
		t.Errorf("lab listener owned by %+v, want this process", s.Processes)
	}
	s = findSocket(t, tab, childNS, childAddr)
	pid := child.Process.Pid
	if ns := *s.Namespace; ns.PID != pid || ns.Path != sys.NetnsPathOfPID(pid) || ns.Name != "" || ns.Processes != 1 || ns.String() != fmt.Sprintf("pid %d", pid) {
		t.Errorf("child's namespace: %+v", ns)
	}
	if len(s.Processes) != 1 || s.Processes[0].PID != pid {
		t.Errorf("child's listener owned by %+v, want pid %d", s.Processes, pid)
	}

	// Each namespace once; each socket once, in its own namespace only.
	var inodes []uint64
	for _, ns := range tab.Namespaces {
		inodes = append(inodes, ns.Inode)
	}
	slices.Sort(inodes)
	if len(slices.Compact(slices.Clone(inodes))) != len(inodes) {
		t.Errorf("namespaces listed more than once: %v", inodes)
	}
	if !tab.Namespaces[0].Self {
		t.Errorf("first namespace %+v, want reach's own", tab.Namespaces[0])
	}
	seen := map[uint64]bool{}
	for _, s := range tab.Sockets {
		if s.Inode != 0 && seen[s.Inode] {
			t.Errorf("socket inode %d listed twice", s.Inode)
		}
		seen[s.Inode] = true
	}
	for _, n := range tab.NotSeen {
		if n.Namespace.Inode == labNS || n.Namespace.Inode == childNS || n.Namespace.Name == a.Name() {
			t.Errorf("not seen: %+v", n)
		}
	}

	// The lab's namespace as listed from inside it, for comparison.
	var inside Table
	if err := a.Do(func() (err error) { inside, err = List(context.Background(), Options{}); return err }); err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, s := range inside.Sockets {
		want = append(want, fmt.Sprint(s.Local, s.Inode))
	}
	for _, s := range tab.Sockets {
		if s.Namespace.Inode == labNS {
			got = append(got, fmt.Sprint(s.Local, s.Inode))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("lab namespace: ListAllNamespaces has %v, List inside it %v", got, want)
	}
}

// TestListAllNamespacesVanishing deletes a named namespace and kills the only
// process of an unnamed one just before each is entered: both are reported
// as vanished, and the rest is listed.
func TestListAllNamespacesVanishing(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	gone, stays := lab.Host("gone"), lab.Host("stays")
	gone.Listen(t, "tcp", "127.0.0.1:0")
	staysAddr := stays.Listen(t, "tcp", "127.0.0.1:0").Addr().(*net.TCPAddr).AddrPort()
	child, _ := startInNewNetns(t)
	pid := child.Process.Pid
	staysNS := inodeOf(t, "/run/netns/"+stays.Name())

	tab, err := listAll(context.Background(), Options{}, func(ns Namespace) {
		switch {
		case ns.Name == gone.Name():
			if out, err := exec.Command("ip", "netns", "del", gone.Name()).CombinedOutput(); err != nil {
				t.Errorf("ip netns del: %v: %s", err, out)
			}
		case ns.PID == pid:
			child.Process.Kill()
			child.Wait()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	findSocket(t, tab, staysNS, staysAddr)
	var vanished []string
	for _, n := range tab.NotSeen {
		if n.Reason == NotSeenVanished {
			if !errors.Is(n.Err, fs.ErrNotExist) {
				t.Errorf("vanished %v: Err %v does not wrap fs.ErrNotExist", n.Namespace, n.Err)
			}
			vanished = append(vanished, n.Namespace.String())
		}
	}
	if !slices.Contains(vanished, gone.Name()) || !slices.Contains(vanished, fmt.Sprintf("pid %d", pid)) {
		t.Errorf("vanished %q, want %s and pid %d; not seen %+v", vanished, gone.Name(), pid, tab.NotSeen)
	}
	for _, ns := range tab.Namespaces {
		if ns.Name == gone.Name() || ns.PID == pid {
			t.Errorf("vanished namespace listed: %+v", ns)
		}
	}
	if !slices.ContainsFunc(tab.Warnings, func(w string) bool { return strings.Contains(w, "went away while being listed") }) {
		t.Errorf("warnings %q say nothing of the vanished namespaces", tab.Warnings)
	}
}

// TestListAllNamespacesUnprivileged lists as user nobody: its own namespace
// only, and the lab's namespace is reported as not entered, with the fix.
func TestListAllNamespacesUnprivileged(t *testing.T) {
	netlab.Require(t)
	a := netlab.New(t).Host("a")
	labAddr := a.Listen(t, "tcp", "127.0.0.1:0").Addr().(*net.TCPAddr).AddrPort()
	rootAddr := testnet.AddrPort(testnet.Listen(t))
	out := runAsNobody(t, helperEnv+"=listall")
	var tab Table
	if err := json.Unmarshal(out, &tab); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(tab.Namespaces) != 1 || !tab.Namespaces[0].Self {
		t.Errorf("as nobody listed namespaces %+v, want only its own", tab.Namespaces)
	}
	if !slices.ContainsFunc(tab.Sockets, func(s Socket) bool { return s.Local == rootAddr }) {
		t.Errorf("own namespace's %v not listed", rootAddr)
	}
	if slices.ContainsFunc(tab.Sockets, func(s Socket) bool { return s.Namespace.Name == a.Name() }) {
		t.Errorf("lab socket %v listed without root", labAddr)
	}
	i := slices.IndexFunc(tab.NotSeen, func(n NotSeen) bool { return n.Namespace.Name == a.Name() })
	if i < 0 || tab.NotSeen[i].Reason != NotSeenPermission || tab.NotSeen[i].Namespace.Inode != inodeOf(t, "/run/netns/"+a.Name()) {
		t.Fatalf("not seen %+v, want %s for permission", tab.NotSeen, a.Name())
	}
	if !slices.ContainsFunc(tab.Warnings, func(w string) bool {
		return strings.Contains(w, a.Name()) && strings.Contains(w, "CAP_SYS_ADMIN") && strings.Contains(w, "run as root")
	}) {
		t.Errorf("warnings %q do not say how to see %s", tab.Warnings, a.Name())
	}
}

func TestListNamespace(t *testing.T) {
	netlab.Require(t)
	a := netlab.New(t).Host("a")
	labAddr := a.Listen(t, "tcp", "127.0.0.1:0").Addr().(*net.TCPAddr).AddrPort()
	child, childPort := startInNewNetns(t)
	pid := child.Process.Pid
	byName, err := ParseNamespaceRef(a.Name())
	if err != nil {
		t.Fatal(err)
	}
	byPath, err := ParseNamespaceRef("/run/netns/" + a.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ref  NamespaceRef
		addr netip.AddrPort
		pid  int // the owner
	}{
		{byName, labAddr, os.Getpid()},
		{byPath, labAddr, os.Getpid()},
		{NamespaceRef{PID: pid}, anyPort(childPort), pid},
	} {
		tab, err := ListNamespace(context.Background(), tt.ref, Options{})
		if err != nil {
			t.Fatalf("%v: %v", tt.ref, err)
		}
		if len(tab.Sockets) != 1 || tab.Sockets[0].Local.Port() != tt.addr.Port() || tab.Sockets[0].Processes[0].PID != tt.pid {
			t.Fatalf("%v: sockets %v, want %v of pid %d", tt.ref, tab.Sockets, tt.addr, tt.pid)
		}
		ns := tab.Sockets[0].Namespace
		if len(tab.Namespaces) != 1 || *ns != tab.Namespaces[0] || ns.Self {
			t.Errorf("%v: namespace %+v, table %+v", tt.ref, *ns, tab.Namespaces)
		}
		if tt.ref.PID != 0 && (ns.PID != pid || ns.Name != "") || tt.ref.PID == 0 && ns.Name != a.Name() {
			t.Errorf("%v: namespace %+v", tt.ref, *ns)
		}
	}
	// Reach's own namespace, through its pid.
	rootAddr := testnet.AddrPort(testnet.Listen(t))
	tab, err := ListNamespace(context.Background(), NamespaceRef{PID: os.Getpid()}, Options{Port: rootAddr.Port()})
	if err != nil || len(tab.Sockets) != 1 || !tab.Sockets[0].Namespace.Self {
		t.Errorf("own namespace by pid: %v, %+v", err, tab)
	}
}

func TestListNamespaceErrors(t *testing.T) {
	tests := []struct {
		ref  NamespaceRef
		want error
		text string
	}{
		{NamespaceRef{Name: "reach-no-such-ns"}, fs.ErrNotExist, "ip netns list"},
		{NamespaceRef{PID: 2147483647}, fs.ErrNotExist, "no such process"},
		{NamespaceRef{Path: "/etc/hostname"}, sys.ErrNotNetns, "not a network namespace"},
		{NamespaceRef{}, ErrBadNamespaceRef, ""},
		{NamespaceRef{Name: "a", PID: 1}, ErrBadNamespaceRef, ""},
		{NamespaceRef{Name: ".."}, ErrBadNamespaceRef, ""},
		{NamespaceRef{PID: -3}, ErrBadNamespaceRef, ""},
	}
	for _, tt := range tests {
		_, err := ListNamespace(context.Background(), tt.ref, Options{})
		if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.text) {
			t.Errorf("%+v: %v, want %v saying %q", tt.ref, err, tt.want, tt.text)
		}
		var nerr *NamespaceError
		if tt.text != "" && (!errors.As(err, &nerr) || nerr.Ref != tt.ref) {
			t.Errorf("%+v: %T is not a *NamespaceError for it", tt.ref, err)
		}
	}
}

// TestContainerOfListener runs a child in a network namespace of its own and
// in a cgroup named as Docker names a container's (systemd driver, cgroup
// v2): its listener and its namespace carry the container.
func TestContainerOfListener(t *testing.T) {
	netlab.Require(t)
	root := cgroup2Mount(t)
	const id = "5eac0ffee0ddba11decafbad0ddfacade5eac0ffee0ddba11decafbad0ddface"
	parent, err := os.MkdirTemp(root, "reach-test-")
	if err != nil {
		t.Fatalf("making a cgroup: %v", err)
	}
	dir := filepath.Join(parent, "docker-"+id+".scope")
	if err := os.Mkdir(dir, 0o755); err != nil {
		os.Remove(parent)
		t.Fatalf("making a cgroup: %v", err)
	}
	child, port := startInNewNetns(t)
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
		for range 50 { // the cgroup empties once the child is reaped
			err := os.Remove(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				if err := os.Remove(parent); err != nil {
					t.Errorf("removing cgroup %s: %v", parent, err)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s not removed", dir)
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(child.Process.Pid)), 0); err != nil {
		t.Fatalf("moving the child into %s: %v", dir, err)
	}
	tab, err := ListAllNamespaces(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := findSocket(t, tab, inodeOf(t, sys.NetnsPathOfPID(child.Process.Pid)), anyPort(port))
	want := Container{ID: id, Runtime: "docker"}
	if s.Container == nil || *s.Container != want || s.Processes[0].Container == nil || *s.Processes[0].Container != want {
		t.Errorf("socket's container %+v, process's %+v, want %+v", s.Container, s.Processes[0].Container, want)
	}
	if c := s.Namespace.Container; c == nil || *c != want {
		t.Errorf("namespace's container %+v, want %+v", c, want)
	}
}

// cgroup2Mount returns where the unified cgroup hierarchy is mounted.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if f := strings.Fields(pre); ok && len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") && f[3] == "/" {
			return f[4]
		}
	}
	t.Fatal("no cgroup v2 hierarchy mounted (see /proc/self/mountinfo)")
	return ""
}
