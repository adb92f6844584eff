package sockets

import (
	"context"
	"slices"

	"github.com/reach-tools/reach/internal/sys"
)

// LookupNamespace finds the network namespace ref names without entering it
// or listing its sockets: its inode, its ip netns name, a process in it,
// the file that names it (Path), and its container. For a PID the process
// is that one, and the container its own. Errors are a *NamespaceError
// (errors.Is(err, fs.ErrNotExist) when there is no such name or process), or
// ErrBadNamespaceRef.
func LookupNamespace(ctx context.Context, ref NamespaceRef) (Namespace, error) {
	path, err := ref.file()
	if err != nil {
		return Namespace{}, err
	}
	ino, err := sys.NetnsInode(path)
	if err != nil {
		return Namespace{}, &NamespaceError{Ref: ref, Err: err}
	}
	cands, _, err := discover(ctx)
	if err != nil {
		return Namespace{}, err
	}
	ns := Namespace{Inode: ino}
	if i := slices.IndexFunc(cands, func(c *candidate) bool { return c.ns.Inode == ino }); i >= 0 {
		ns = cands[i].ns
	}
	ns.Path = path
	if ref.Name != "" {
		ns.Name = ref.Name
	}
	if ref.PID != 0 {
		ns.PID = ref.PID
		if c := containerOf([]int{ref.PID}); c != nil {
			ns.Container = c
		}
	}
	return ns, nil
}
