//go:build unix

package fault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lock takes the host's fault lock (flock on LockPath), waiting for it
// while ctx allows, at most ten seconds: every holder runs a few firewall
// commands, each bounded.
func (h *Host) lock(ctx context.Context) (func(), error) {
	path := h.LockPath
	if path == "" {
		path = "/run/reach-fault.lock"
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fault: lock file: %w", err)
	}
	deadline := time.Now().Add(cmdTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("fault: lock %s (another reach fault holds it?): %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
