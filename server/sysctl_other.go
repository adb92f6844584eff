//go:build !linux

package server

// unprivilegedPortStart is unknown outside Linux; callers assume the
// traditional 1024.
func unprivilegedPortStart() (int, bool) { return 0, false }
