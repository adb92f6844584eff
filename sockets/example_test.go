package sockets_test

import (
	"context"
	"fmt"

	"github.com/reach-tools/reach/sockets"
)

// Who listens on port 5432, on which address, and is it stopped?
func ExampleListening() {
	socks, err := sockets.Listening(context.Background(), 5432)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range socks {
		fmt.Printf("%s listens on %s (%s)\n", s.Owner(), s.Local, s.ProcessState)
		if s.RecvQ > s.SendQ {
			fmt.Printf("accept queue full: %d waiting, backlog %d\n", s.RecvQ, s.SendQ)
		}
	}
}

// Every TCP socket of one process, in all states, with what could not be seen.
func ExampleList() {
	t, err := sockets.List(context.Background(), sockets.Options{All: true, Process: "postgres"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range t.Sockets {
		fmt.Println(s.Proto, s.Local, s.Remote, s.State)
	}
	for _, w := range t.Warnings {
		fmt.Println("warning:", w)
	}
}

// Who listens on port 80 anywhere on this host, containers included?
func ExampleListAllNamespaces() {
	t, err := sockets.ListAllNamespaces(context.Background(), sockets.Options{Port: 80})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range t.Sockets {
		where := "netns " + s.Namespace.String()
		if s.Container != nil {
			where += ", container " + s.Container.Short()
		}
		fmt.Printf("%s listens on %s (%s)\n", s.Owner(), s.Local, where)
	}
	for _, n := range t.NotSeen {
		fmt.Printf("not seen: %s (%s)\n", n.Namespace, n.Reason)
	}
}
