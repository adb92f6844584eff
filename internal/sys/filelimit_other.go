//go:build !unix

package sys

// FileLimit is unknown on systems without RLIMIT_NOFILE: it returns
// ErrUnsupported.
func FileLimit() (limit uint64, open int, err error) { return 0, -1, ErrUnsupported }
