//go:build !linux

package sys

// BindFile is Linux-only; elsewhere it returns ErrUnsupported.
func BindFile(src, dst string) error { return &MountError{Src: src, Dst: dst, Err: ErrUnsupported} }

// MountNamespaceInode is Linux-only; elsewhere it returns ErrUnsupported.
func MountNamespaceInode(path string) (uint64, error) {
	return 0, ErrUnsupported
}
