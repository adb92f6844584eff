package sockets

import (
	"context"
	"errors"
	"io/fs"
	"strconv"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
)

// TestLookupNamespace finds a namespace by name, by path and by the pid of
// a process in it (a namespace without a name), without entering it; a
// missing name or process is fs.ErrNotExist.
func TestLookupNamespace(t *testing.T) {
	netlab.Require(t)
	a := netlab.New(t).Host("a")
	child, _ := startInNewNetns(t)
	pid := child.Process.Pid
	for _, tt := range []struct {
		ref       NamespaceRef
		ino       uint64
		name      string
		pid       int
		path      string
		processes int
	}{
		{NamespaceRef{Name: a.Name()}, inodeOf(t, "/run/netns/"+a.Name()), a.Name(), 0, "/run/netns/" + a.Name(), 0},
		{NamespaceRef{Path: "/run/netns/" + a.Name()}, inodeOf(t, "/run/netns/"+a.Name()), a.Name(), 0, "/run/netns/" + a.Name(), 0},
		{NamespaceRef{PID: pid}, inodeOf(t, "/proc/"+strconv.Itoa(pid)+"/ns/net"), "", pid, "/proc/" + strconv.Itoa(pid) + "/ns/net", 1},
	} {
		ns, err := LookupNamespace(context.Background(), tt.ref)
		if err != nil {
			t.Fatalf("%v: %v", tt.ref, err)
		}
		if ns.Inode != tt.ino || ns.Name != tt.name || ns.PID != tt.pid || ns.Path != tt.path || ns.Processes != tt.processes || ns.Self {
			t.Errorf("%v: %+v; want inode %d, name %q, pid %d, path %s, %d processes", tt.ref, ns, tt.ino, tt.name, tt.pid, tt.path, tt.processes)
		}
	}
	for _, ref := range []NamespaceRef{{Name: "reach-no-such-ns"}, {PID: 1 << 22}} {
		_, err := LookupNamespace(context.Background(), ref)
		var ne *NamespaceError
		if !errors.As(err, &ne) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: %v; want a NamespaceError that is fs.ErrNotExist", ref, err)
		}
	}
}
