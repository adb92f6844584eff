package doctor_test

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// These tests run in a synctest bubble against a fake network: addresses
// ending in .1 drop every SYN (the dial ends with its context), the others
// refuse at once. Time is virtual, so they assert exact instants.

func fakeDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	if host[len(host)-2:] == ".1" {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
}

// manyOptions probes through fakeDial, without local evidence.
var manyOptions = doctor.Options{
	Timeout: time.Second,
	Dial:    fakeDial,
	Ladder:  []doctor.Stage{{doctor.DNSCheck}, {doctor.TCPCheck}},
}

// dropped returns n endpoints on distinct addresses that drop.
func dropped(t *testing.T, n int) []endpoint.Endpoint {
	t.Helper()
	var eps []endpoint.Endpoint
	for i := range n {
		ep, err := endpoint.ParseEndpoint(fmt.Sprintf("198.18.%d.1:5432", i), 0)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	return eps
}

// runTime returns how long RunMany took over eps, checking that every
// report comes, in order.
func runTime(t *testing.T, eps []endpoint.Endpoint) time.Duration {
	t.Helper()
	start := time.Now()
	n := 0
	for i, r := range doctor.RunMany(t.Context(), eps, manyOptions) {
		if i != n || r.Target != eps[i].String() || r.Class != probe.Timeout {
			t.Errorf("report %d (index %d): %s %s; want %s timeout", n, i, r.Target, r.Class, eps[n])
		}
		n++
	}
	if n != len(eps) {
		t.Errorf("%d reports, want %d", n, len(eps))
	}
	return time.Since(start)
}

// Several firewalled targets cost one timeout, not one each: up to 8 of
// them are diagnosed at once, the next ones when a place frees up.
func TestRunManyConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		one := runTime(t, dropped(t, 1))
		if one < time.Second {
			t.Fatalf("one dropped target took %v, want its timeout (1s) at least", one)
		}
		if full := runTime(t, dropped(t, 8)); full != one {
			t.Errorf("8 dropped targets took %v, want %v as one did: checked one after another?", full, one)
		}
		if over := runTime(t, dropped(t, 9)); over != 2*one {
			t.Errorf("9 dropped targets took %v, want %v: at most 8 at once", over, 2*one)
		}
	})
}

// Reports come in the order given, each as soon as it and those before it
// are done: a quick one waits for a slow one before it, not for the rest.
func TestRunManyOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var eps []endpoint.Endpoint
		for _, s := range []string{"198.18.0.2:80", "198.18.0.1:80", "198.18.0.3:80"} {
			ep, _ := endpoint.ParseEndpoint(s, 0)
			eps = append(eps, ep)
		}
		slow := runTime(t, eps[1:2])
		start := time.Now()
		want := []struct {
			class probe.Class
			at    time.Duration
		}{{probe.Refused, 0}, {probe.Timeout, slow}, {probe.Refused, slow}}
		for i, r := range doctor.RunMany(t.Context(), eps, manyOptions) {
			if at := time.Since(start); r.Target != eps[i].String() || r.Class != want[i].class || at != want[i].at {
				t.Errorf("report %d: %s %s at %v; want %s %s at %v", i, r.Target, r.Class, at, eps[i], want[i].class, want[i].at)
			}
		}
	})
}

// Stopping early cancels the diagnoses still running and waits for them:
// none outlives the loop (synctest fails on a goroutine left blocked).
func TestRunManyStopEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := dropped(t, 2*doctor.ManyAtOnce)
		start := time.Now()
		for i, r := range doctor.RunMany(t.Context(), eps, manyOptions) {
			if i != 0 || r.Class != probe.Timeout {
				t.Fatalf("report %d %s, want the first, timeout", i, r.Class)
			}
			break
		}
		first := time.Since(start)
		if one := runTime(t, eps[:1]); first != one {
			t.Errorf("stopping after the first report took %v, want %v: the others were waited out", first, one)
		}
	})
}
