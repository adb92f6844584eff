package server

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// checkListenAddr checks that a listen address has the HOST:PORT shape with
// a port in 0-65535, and says what was probably meant when it does not.
func checkListenAddr(a string) error {
	if _, err := strconv.ParseUint(a, 10, 16); err == nil {
		return fmt.Errorf("missing host: use :%s for every address of this host, or 127.0.0.1:%s for loopback only", a, a)
	}
	if strings.Contains(a, ",") {
		return errors.New("one address at a time: give each address separately (repeat --listen)")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s; want HOST:PORT, e.g. 127.0.0.1:7000, [::1]:7000 or :7000", ae.Err)
		}
		return err
	}
	if port == "" {
		return errors.New("missing port after the colon (0 picks a free one)")
	}
	if n, err := strconv.ParseUint(port, 10, 64); err != nil {
		return fmt.Errorf("port %q is not a number", port)
	} else if n > 65535 {
		return fmt.Errorf("port %d out of range 0-65535", n)
	}
	if host != "" && host[0] == '[' {
		return errors.New("nested brackets around the host")
	}
	return nil
}

// acceptHint says what to do about an accept error, for the log.
func acceptHint(err error) string {
	switch {
	case errors.Is(err, syscall.EMFILE):
		return "the process is out of file descriptors: raise its limit (ulimit -n, systemd LimitNOFILE=) or lower the connection limit (max conns)"
	case errors.Is(err, syscall.ENFILE):
		return "the system is out of file descriptors: raise fs.file-max or find the process holding them"
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return "the kernel is short of memory for sockets"
	}
	return "retrying"
}
