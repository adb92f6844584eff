package dial_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

// Wait until a database and a cache accept connections, as a program (or
// reach wait db:5432 cache:6379 -- ./app) does before it starts.
func ExampleWait() {
	db, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	cache, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	eps, _ := endpoint.ParseEndpoints([]string{db.Addr().String(), cache.Addr().String()}, 0)
	res, err := dial.Wait(context.Background(), eps, dial.WaitOptions{Timeout: 30 * time.Second})
	if err != nil {
		panic(err)
	}
	for _, t := range res.Targets {
		fmt.Println(t.Ready, t.Class, t.Attempts)
	}
	// Output:
	// true open 1
	// true open 1
}

// A wait that timed out names each endpoint that was not ready, with its
// last class and likely cause, and matches them with errors.Is.
func ExampleWaitError() {
	eps, _ := endpoint.ParseEndpoints([]string{closedAddr()}, 0)
	_, err := dial.Wait(context.Background(), eps, dial.WaitOptions{Timeout: 500 * time.Millisecond})
	var we *dial.WaitError
	if errors.As(err, &we) {
		t := we.NotReady[0]
		fmt.Println(t.Class, errors.Is(err, probe.Refused), errors.Is(err, context.DeadlineExceeded))
		fmt.Println(strings.TrimPrefix(t.Why, t.Endpoint.String()))
	}
	// Output:
	// refused true true
	//  still refused after 500ms — likely: the server is not running
}
