//go:build unix

package sys

import (
	"os"
	"syscall"
)

// FileLimit returns the soft limit on open files (RLIMIT_NOFILE) and how
// many descriptors the process holds now. The count is read from
// /proc/self/fd (or /dev/fd); when neither can be read it is -1.
func FileLimit() (limit uint64, open int, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, -1, err
	}
	open = -1
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		// The directory's own descriptor is listed while it is read.
		if ents, err := os.ReadDir(dir); err == nil {
			open = len(ents) - 1
			break
		}
	}
	return uint64(lim.Cur), open, nil
}
