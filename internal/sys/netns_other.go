//go:build !linux

package sys

// Netns is a network namespace; they exist on Linux only.
type Netns struct{}

// OpenNetns is Linux-only; elsewhere it returns ErrUnsupported.
func OpenNetns(path string) (*Netns, error) {
	return nil, &NetnsError{Op: "open", Path: path, Err: ErrUnsupported}
}

// NetnsInode is Linux-only; elsewhere it returns ErrUnsupported.
func NetnsInode(path string) (uint64, error) {
	return 0, &NetnsError{Op: "inspect", Path: path, Err: ErrUnsupported}
}

// Inode is 0: there are no namespaces.
func (n *Netns) Inode() uint64 { return 0 }

// Path is empty.
func (n *Netns) Path() string { return "" }

// Close does nothing.
func (n *Netns) Close() error { return nil }

// Do returns ErrUnsupported without running fn.
func (n *Netns) Do(fn func() error) error { return ErrUnsupported }

// InNetns is Linux-only; elsewhere it returns ErrUnsupported.
func InNetns(path string, fn func() error) error {
	return &NetnsError{Op: "open", Path: path, Err: ErrUnsupported}
}
