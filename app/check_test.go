package app

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestCheckUnknownProtocol(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, err := Check(context.Background(), a, Request{Protocol: "gopher"})
	if !errors.Is(err, ErrUnknownProtocol) {
		t.Fatalf("Check(gopher) = %v, want ErrUnknownProtocol", err)
	}
}
