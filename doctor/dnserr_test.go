package doctor

import (
	"net"
	"testing"
)

// Go's resolver keeps only the text of the socket error; these are the
// shapes it takes, and the server it names may not be the one queried.
func TestResolverFailureFromText(t *testing.T) {
	for _, tc := range []struct {
		err, server          string
		refused, unreachable bool
		queried              string
	}{
		{"dial udp 198.19.9.1:53: connect: network is unreachable", "10.255.255.53:53", false, true, "198.19.9.1:53"},
		{"read udp 198.18.0.1:40000->198.18.0.2:53: recvfrom: connection refused", "198.18.0.2:53", true, false, "198.18.0.2:53"},
		{"dial udp [fd00::2]:53: connect: no route to host", "[fd00::2]:53", false, true, "[fd00::2]:53"},
		{"dial udp4 198.18.0.2:53: connect: operation not permitted", "", false, true, "198.18.0.2:53"},
		{"i/o timeout", "198.18.0.2:53", false, false, "198.18.0.2:53"},
		{"no such host", "", false, false, ""},
	} {
		de := &net.DNSError{Err: tc.err, Server: tc.server}
		if got := resolverRefused(tc.err); got != tc.refused {
			t.Errorf("%q: refused = %v", tc.err, got)
		}
		if got := resolverUnreachable(tc.err); got != tc.unreachable {
			t.Errorf("%q: unreachable = %v", tc.err, got)
		}
		if got := queried(de); got != tc.queried {
			t.Errorf("%q: queried %q, want %q", tc.err, got, tc.queried)
		}
	}
}
