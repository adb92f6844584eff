// Command reach explains why this machine cannot connect to a host:port,
// and helps programs avoid the problem. See internal/cli for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/reach-tools/reach/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first SIGINT/SIGTERM cancels ctx so commands shut down gracefully;
	// restoring the default handlers then lets a second one end us at once.
	go func() { <-ctx.Done(); stop() }()
	stdio := cli.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Exec: syscall.Exec}
	code := cli.Run(ctx, os.Args[1:], stdio)
	stop()
	os.Exit(code)
}
