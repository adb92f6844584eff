package doctor_test

import (
	"context"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// Diagnosing open and refused ports on loopback leaves no descriptor and no
// goroutine behind.
func TestNoLeaks(t *testing.T) {
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	eps := []endpoint.Endpoint{
		endpoint.FromAddrPort(open.Addr().(*net.TCPAddr).AddrPort()),
		endpoint.FromAddrPort(closed.Addr().(*net.TCPAddr).AddrPort()),
	}
	run := func() {
		for _, ep := range eps {
			doctor.Run(context.Background(), ep, doctor.Options{Timeout: 2 * time.Second, Probes: 1})
		}
	}
	run() // warm up lazily opened descriptors (netlink, resolver)
	fds, gs := openFDs(t), runtime.NumGoroutine()
	for range 10 {
		run()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		nf, ng := openFDs(t), runtime.NumGoroutine()
		if nf <= fds && ng <= gs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 diagnoses: %d descriptors (was %d), %d goroutines (was %d)", nf, fds, ng, gs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
