package doctor

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
)

// A server that accepts and then closes or resets 300 ms later passes the
// tcp check's short probes; the connection the check holds while the other
// stages run catches it. A healthy server stays reachable.
func TestHoldCatchesLateDrop(t *testing.T) {
	const late = 300 * time.Millisecond
	after := func(fn func(net.Conn)) func(net.Conn) {
		return func(c net.Conn) {
			// Wait out the late drop, or the client going away first.
			c.SetReadDeadline(time.Now().Add(late))
			c.Read(make([]byte, 1))
			fn(c)
		}
	}
	tests := []struct {
		name     string
		handle   func(net.Conn)
		cause    Cause
		evidence string
	}{
		{"closes", after(testnet.HangUp), ClosedByPeer, "accepted, then closed"},
		{"resets", after(testnet.Reset), ResetByPeer, "accepted, then reset"},
		{"healthy", testnet.Drain, Reachable, ""},
	}
	ladder := []Stage{{DNSCheck}, {TCPCheck}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap := testnet.Serve(t, tt.handle)
			r := Run(context.Background(), endpoint.FromAddrPort(ap), Options{Timeout: 2 * time.Second, Ladder: ladder})
			if r.Cause != tt.cause || r.Confidence != Confirmed || r.Reachable != (tt.cause == Reachable) {
				t.Fatalf("cause %s (%s), reachable %v; want %s (confirmed); findings %+v, checks %+v",
					r.Cause, r.Confidence, r.Reachable, tt.cause, r.Findings, r.Checks)
			}
			if tt.evidence != "" {
				m := regexp.MustCompile(tt.evidence + ` ([0-9.]+)ms later`).FindStringSubmatch(r.Findings[0].Evidence)
				if m == nil {
					t.Fatalf("evidence %q, want %q N ms later", r.Findings[0].Evidence, tt.evidence)
				}
				// The client counts from its connect, the server from its accept.
				if d, _ := strconv.ParseFloat(m[1], 64); d < 250 || d > 700 {
					t.Errorf("evidence %q: want about %v later", r.Findings[0].Evidence, late)
				}
			}
			if tt.evidence != "" && !strings.Contains(r.Verdict, "the handshake completes, but") {
				t.Errorf("verdict %q: want not reachable though the handshake completes", r.Verdict)
			}
			if tt.cause == Reachable && !strings.Contains(r.Checks[1].Detail, "held a connection to "+ap.String()+" for 1s") {
				t.Errorf("tcp detail %q: want the 1s hold", r.Checks[1].Detail)
			}
		})
	}
}

// Options.Hold sets the hold (bounded by the timeout) or, negative, turns it
// off: then a late drop passes, as it did before the hold.
func TestHoldOption(t *testing.T) {
	late := func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		c.Read(make([]byte, 1))
		testnet.Reset(c)
	}
	tests := []struct {
		name    string
		hold    time.Duration
		timeout time.Duration
		keep    bool // a server that keeps its connections, not one that drops them late
		cause   Cause
		detail  string // in the tcp check's detail; "" wants no hold there
	}{
		{"default", 0, 2 * time.Second, false, ResetByPeer, ""},
		{"shorter than the drop", 100 * time.Millisecond, 2 * time.Second, false, Reachable, "for 100ms: the server kept it"},
		{"bounded by the timeout", 5 * time.Second, 700 * time.Millisecond, true, Reachable, "for 700ms: the server kept it"},
		{"off", -1, 2 * time.Second, false, Reachable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handle := late
			if tt.keep {
				handle = nil
			}
			ap := testnet.Serve(t, handle)
			r := Run(context.Background(), endpoint.FromAddrPort(ap),
				Options{Timeout: tt.timeout, Hold: tt.hold, Ladder: []Stage{{DNSCheck}, {TCPCheck}}})
			if r.Cause != tt.cause {
				t.Fatalf("cause %s (%s); want %s; checks %+v", r.Cause, r.Confidence, tt.cause, r.Checks)
			}
			held := strings.Contains(r.Checks[1].Detail, "held a connection")
			switch {
			case tt.detail != "" && !strings.Contains(r.Checks[1].Detail, tt.detail):
				t.Errorf("tcp detail %q, want %q", r.Checks[1].Detail, tt.detail)
			case tt.hold < 0 && held:
				t.Errorf("tcp detail %q: held a connection with the hold off", r.Checks[1].Detail)
			}
		})
	}
}
