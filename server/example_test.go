package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/reach-tools/reach/server"
)

// An echo server on a free loopback port, used without the CLI.
func ExampleListen() {
	srv, err := server.Listen(context.Background(), server.Config{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()

	c, err := net.Dial("tcp", srv.Addrs()[0].String())
	if err != nil {
		fmt.Println(err)
		return
	}
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	c.Close()

	stop() // stop accepting, let open connections finish, return
	fmt.Println(string(reply), <-done)
	// Output: hello <nil>
}

// A port that is taken: the error says who holds it and what to do.
func ExampleBindError() {
	held, _ := net.Listen("tcp", "127.0.0.1:0")
	defer held.Close()

	_, err := server.Listen(context.Background(), server.Config{Listen: []string{held.Addr().String()}})
	var be *server.BindError
	if errors.As(err, &be) {
		fmt.Println(be.Cause, errors.Is(err, syscall.EADDRINUSE), len(be.Fix()) > 0)
	}
	// Output: in-use true true
}
