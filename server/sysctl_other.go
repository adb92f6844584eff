//go:build !linux

package server

// unprivilegedPortStart is unknown outside Linux; callers assume the
// traditional 1024.
func unprivilegedPortStart() (int, bool) { return 0, false }

// ipv6Disabled is unknown outside Linux: the error names the address only.
func ipv6Disabled() bool { return false }
