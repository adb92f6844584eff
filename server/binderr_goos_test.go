package server

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// bindErr is the error net.Listen returns on Windows: Winsock's number.
func bindErr(port int, wsa syscall.Errno) error {
	return &net.OpError{Op: "listen", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
		Err: os.NewSyscallError("bind", wsa)}
}

// Windows' bind errors are explained as Linux's are, with Windows' remedies.
func TestBindErrorWindows(t *testing.T) {
	defer func(g string) { goos = g }(goos)
	goos = "windows"

	// WSAEACCES (10013): no privileged ports there, a reserved range.
	e := explainBind(context.Background(), "127.0.0.1:8000", bindErr(8000, 10013))
	if e.Cause != CauseExcluded || !errors.Is(e, syscall.EACCES) || !strings.Contains(e.Error(), "excluded port range") ||
		!strings.Contains(strings.Join(e.Fix(), "\n"), "excludedportrange") {
		t.Errorf("WSAEACCES: cause %s, %v, fix %q", e.Cause, e, e.Fix())
	}

	// WSAEADDRINUSE (10048): the holder is looked up in the socket table.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	e = explainBind(context.Background(), ln.Addr().String(), bindErr(port, 10048))
	if e.Cause != CauseInUse || !errors.Is(e, syscall.EADDRINUSE) {
		t.Fatalf("WSAEADDRINUSE: cause %s, %v", e.Cause, e)
	}
	if len(e.Holders) == 0 && e.HolderErr == nil {
		if fix := strings.Join(e.Fix(), "\n"); !strings.Contains(fix, "netstat -ano | findstr :") {
			t.Errorf("no holder seen, fix %q", fix)
		}
	} else if e.HolderErr == nil && !strings.Contains(e.Error(), "held by") {
		t.Errorf("holder seen but not named: %v", e)
	}
	// Without a holder in sight, the remedy is Windows' command.
	e.Holders, e.HolderErr = nil, nil
	if fix := strings.Join(e.Fix(), "\n"); !strings.Contains(fix, "netstat -ano | findstr :") {
		t.Errorf("fix %q", fix)
	}
}
