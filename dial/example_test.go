package dial_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// closedAddr returns a loopback address that refuses connections.
func closedAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Failover from a primary that refuses to a secondary, watching each attempt.
func ExampleNew() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	eps, err := endpoint.ParseEndpoints([]string{closedAddr(), ln.Addr().String()}, 0)
	if err != nil {
		panic(err)
	}
	d := dial.New(eps, dial.Options{
		Policy:  dial.Ordered,
		Retries: 3, // rounds after the first, 1s apart growing ×1.6
		OnAttempt: func(a dial.Attempt) {
			fmt.Printf("attempt %d: %s\n", a.N, a.Class)
		},
	})
	conn, err := d.DialContext(context.Background())
	if err != nil {
		panic(err)
	}
	conn.Close()
	// Output:
	// attempt 1: refused
	// attempt 2: open
}

// The dialer as http.Transport's DialContext: requests go to whichever
// endpoint accepts, whatever host the URL names.
func ExampleDialer_DialNetwork() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello from the secondary")
	}))
	defer srv.Close()
	eps, _ := endpoint.ParseEndpoints([]string{closedAddr(), srv.Listener.Addr().String()}, 0)
	d := dial.New(eps, dial.Options{Policy: dial.Race, AttemptDelay: 100 * time.Millisecond})
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialNetwork}}
	resp, err := client.Get("http://api.internal/")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output:
	// 200 OK hello from the secondary
}

// A failed dial names every endpoint's last class and matches each with errors.Is.
func ExampleError() {
	eps, _ := endpoint.ParseEndpoints([]string{closedAddr()}, 0)
	_, err := dial.New(eps, dial.Options{}).DialContext(context.Background())
	var de *dial.Error
	if errors.As(err, &de) {
		fmt.Println(len(de.Last), de.Last[0].Class, errors.Is(err, probe.Refused))
	}
	// Output:
	// 1 refused true
}
