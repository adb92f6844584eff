package sys

import "fmt"

// MountError is an error binding a file over another: which, and the errno.
type MountError struct {
	Src, Dst string
	Err      error
}

func (e *MountError) Error() string {
	return fmt.Sprintf("sys: bind %s over %s: %v", e.Src, e.Dst, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }
