//go:build unix

package server

import (
	"fmt"
	"net"
	"syscall"
)

// setBacklog listens again on a listening socket with another backlog:
// Linux (and the BSDs) take a second listen as a new queue length. Go
// listens with net.core.somaxconn, which no ListenConfig option changes.
func setBacklog(ln net.Listener, n int) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("server: backlog: %T is not a TCP listener", ln)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), n) }); err != nil {
		return err
	}
	if lerr != nil {
		return fmt.Errorf("server: listen backlog %d: %w", n, lerr)
	}
	return nil
}
