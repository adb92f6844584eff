//go:build !unix

package server

import (
	"errors"
	"net"
)

func setBacklog(net.Listener, int) error {
	return errors.New("server: a listen backlog can only be set on Unix")
}
