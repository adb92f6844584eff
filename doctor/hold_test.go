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
// stages run catches it. A healthy server stays reachable, and the hold
// does not add to the check's time more than itself.
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
			start := time.Now()
			r := Run(context.Background(), endpoint.FromAddrPort(ap), Options{Timeout: 2 * time.Second, Ladder: ladder})
			took := time.Since(start)
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
			// The hold runs beside the three short probes (100 ms each), not after them.
			if limit := maxHold + 250*time.Millisecond; took > limit {
				t.Errorf("the check took %v, want under %v: the hold is not in parallel?", took, limit)
			}
		})
	}
}
