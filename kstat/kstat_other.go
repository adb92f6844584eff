//go:build !linux

package kstat

// Read is Linux-only; elsewhere it returns ErrUnsupported.
func Read() (Snapshot, error) { return Snapshot{}, ErrUnsupported }

// ReadNamespace is Linux-only; elsewhere it returns ErrUnsupported.
func ReadNamespace(path string) (Snapshot, error) { return Snapshot{}, ErrUnsupported }
