//go:build unix

package sys

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Answered reports whether a connect in progress on c has its answer
// (the socket is writable, or has an error), without taking it: poll(2)
// with no wait leaves SO_ERROR for the dialer that reads it. ok is false
// when the socket could not be looked at (closed meanwhile).
func Answered(c syscall.RawConn) (answered, ok bool) {
	err := c.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, perr := unix.Poll(pfd, 0)
		ok = perr == nil
		answered = n > 0 && pfd[0].Revents&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) != 0
	})
	return answered, ok && err == nil
}
