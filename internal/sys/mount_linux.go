package sys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// BindFile binds the file src over dst (mount --bind), in the calling
// process's mount namespace. Callers make sure that namespace is a private
// one of their own (see MountNamespaceInode): in the host's, the bind would
// change dst for every process.
func BindFile(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return &MountError{Src: src, Dst: dst, Err: err}
	}
	return nil
}

// MountNamespaceInode returns the inode that identifies the mount namespace
// named by a /proc/PID/ns/mnt link (or /proc/self/ns/mnt).
func MountNamespaceInode(path string) (uint64, error) {
	buf := make([]byte, 64)
	n, err := unix.Readlink(path, buf)
	if err != nil {
		return 0, fmt.Errorf("sys: mount namespace %s: %w", path, err)
	}
	ino, ok := ParseNamespaceLink(string(buf[:n]), "mnt")
	if !ok {
		return 0, fmt.Errorf("sys: %s is not a mount namespace link (%q)", path, buf[:n])
	}
	return ino, nil
}
