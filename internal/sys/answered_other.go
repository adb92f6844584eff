//go:build !unix

package sys

import "syscall"

// Answered cannot look at a socket here: ok is false.
func Answered(syscall.RawConn) (answered, ok bool) { return false, false }
