package sys

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// TryLock takes an exclusive lock on f (LockFileEx) without waiting:
// ErrLocked when another handle holds it. Windows releases it when f is
// closed or the process ends. The byte it locks lies at 4 GiB, past what
// the file holds: Windows locks are mandatory, and others still read it.
func TryLock(f *os.File) error {
	ol := windows.Overlapped{OffsetHigh: 1}
	err := windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return fmt.Errorf("%w: %s", ErrLocked, f.Name())
	}
	return fmt.Errorf("sys: lock %s: %w", f.Name(), err)
}
