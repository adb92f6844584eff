package doctor_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
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
	eps := []endpoint.Endpoint{
		endpoint.FromAddrPort(testnet.Serve(t, testnet.HangUp)),
		endpoint.FromAddrPort(testnet.ClosedPort(t)),
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
	var nf, ng int
	if !testnet.Poll(5*time.Second, func() bool {
		nf, ng = openFDs(t), runtime.NumGoroutine()
		return nf <= fds && ng <= gs
	}) {
		t.Fatalf("after 20 diagnoses: %d descriptors (was %d), %d goroutines (was %d)", nf, fds, ng, gs)
	}
}
