package sys

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Netns is an open network namespace file: a bind mount made by `ip netns add`
// (/run/netns/NAME), /proc/PID/ns/net, or /proc/thread-self/ns/net. While it is
// open the namespace lives on, even if its processes exit and its name is
// deleted; Do runs code inside it.
type Netns struct {
	fd    int
	inode uint64
	path  string
}

// OpenNetns opens the network namespace file at path. The error is a
// *NetnsError wrapping the errno: ENOENT (the process exited or the name was
// deleted), EACCES (another user's process), or ErrNotNetns.
func OpenNetns(path string) (*Netns, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &NetnsError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	var sfs unix.Statfs_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &NetnsError{Op: "inspect", Path: path, Err: err}
	}
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return nil, &NetnsError{Op: "open", Path: path, Err: ErrNotNetns}
	}
	// NS_GET_NSTYPE tells a net namespace from the others (Linux 4.11+;
	// older kernels answer ENOTTY and setns checks the type instead).
	if typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err == nil && typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return nil, &NetnsError{Op: "open", Path: path, Err: ErrNotNetns}
	}
	return &Netns{fd: fd, inode: st.Ino, path: path}, nil
}

// NetnsInode returns the inode that identifies the network namespace named by
// path without opening it: the target of a /proc/PID/ns/net link, or the
// inode of a bind mount such as /run/netns/NAME.
func NetnsInode(path string) (uint64, error) {
	buf := make([]byte, 64)
	n, err := unix.Readlink(path, buf)
	if err == nil {
		if ino, ok := ParseNamespaceLink(string(buf[:n]), "net"); ok {
			return ino, nil
		}
		return 0, &NetnsError{Op: "inspect", Path: path, Err: ErrNotNetns}
	}
	if err != unix.EINVAL { // EINVAL: not a link, e.g. a bind mount
		return 0, &NetnsError{Op: "inspect", Path: path, Err: err}
	}
	var st unix.Stat_t
	var sfs unix.Statfs_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &NetnsError{Op: "inspect", Path: path, Err: err}
	}
	if err := unix.Statfs(path, &sfs); err != nil || sfs.Type != unix.NSFS_MAGIC {
		return 0, &NetnsError{Op: "inspect", Path: path, Err: ErrNotNetns}
	}
	return st.Ino, nil
}

// Inode identifies the namespace: two files name the same namespace when
// their inodes are equal.
func (n *Netns) Inode() uint64 { return n.inode }

// Path is the file the namespace was opened from.
func (n *Netns) Path() string { return n.path }

// Close closes the namespace file. It must not be called during Do.
func (n *Netns) Close() error {
	if n.fd < 0 {
		return nil
	}
	err := unix.Close(n.fd)
	n.fd = -1
	return err
}

// Do runs fn inside the namespace, on a new goroutine locked to its OS thread,
// and waits for it. The thread switches back to its own namespace afterwards;
// if that fails the goroutine exits still locked, so Go discards the thread
// and nothing else ever runs in the wrong namespace (the error wraps
// ErrNetnsRestore). The calling goroutine never changes namespace.
//
// Sockets fn opens belong to the namespace and keep working after Do returns;
// files fn opens under /proc/thread-self/net and /proc/sys/net show it.
// Goroutines fn starts run outside it. A panic in fn is raised again in the
// caller. fn must not call runtime.Goexit (t.Fatal): Do returns ErrNetnsGoexit.
func (n *Netns) Do(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: &NetnsError{Op: "open", Path: "/proc/thread-self/ns/net", Err: err}}
			return
		}
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			unix.Close(orig)
			runtime.UnlockOSThread()
			done <- result{err: &NetnsError{Op: "enter", Path: n.path, Err: err}}
			return
		}
		var r result
		returned := false
		defer func() {
			if !returned {
				if r.value = recover(); r.value != nil {
					r.panicked = true
				} else {
					r.err = ErrNetnsGoexit
				}
			}
			if err := restoreNetns(orig); err != nil {
				err = fmt.Errorf("%w (after %s): %w", ErrNetnsRestore, n.path,
					os.NewSyscallError("setns", err))
				r.err = errors.Join(r.err, err)
			} else {
				runtime.UnlockOSThread()
			}
			unix.Close(orig)
			done <- r
		}()
		r.err = fn()
		returned = true
	}()
	r := <-done
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

// restoreNetns switches the calling thread back to the namespace of fd; a
// variable so a test can make it fail.
var restoreNetns = func(fd int) error { return unix.Setns(fd, unix.CLONE_NEWNET) }

// InNetns opens the namespace file at path, runs fn inside it (see
// Netns.Do), and closes it.
func InNetns(path string, fn func() error) error {
	ns, err := OpenNetns(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(fn)
}
