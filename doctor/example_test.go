package doctor_test

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
)

// From a client that only sees "connection refused", the doctor names the
// most likely cause and the others, and says what would tell them apart.
// (The dialer here fakes the refusal; by default Run dials for real.)
func ExampleRun() {
	refused := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	ep, _ := endpoint.ParseEndpoint("198.18.0.2:5432", 0)
	r := doctor.Run(context.Background(), ep, doctor.Options{
		Dial:   refused,
		Ladder: []doctor.Stage{{doctor.DNSCheck}, {doctor.TCPCheck}},
	})
	fmt.Println(r.Reachable, r.Class, r.Cause, r.Confidence)
	for _, f := range r.Findings {
		fmt.Printf("%s (%s): %s\n", f.Cause, f.Confidence, f.Issue)
	}
	// Output:
	// false refused not-listening likely
	// not-listening (likely): Nothing listens on port 5432 (most likely)
	// wrong-port (possible): The server listens on another port or address (127.0.0.1 only, IPv6 only)
	// firewall-reject (possible): A firewall rejects the connection
}
