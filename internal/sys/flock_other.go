//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package sys

import "os"

// TryLock is not available on this OS: it returns ErrUnsupported.
func TryLock(f *os.File) error { return ErrUnsupported }
