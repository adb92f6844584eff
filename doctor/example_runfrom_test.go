package doctor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/sockets"
)

// A Go program runs the ladder from inside a container's network namespace
// by starting itself again there: main hands over to the child's part when
// RunFrom started it (ChildVantage says so), and the parent reads its
// reports. Entering a namespace needs root.
func ExampleRunFrom() {
	// At the top of main: the child's part.
	if v, err := doctor.ChildVantage(); err != nil || v != nil {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ep, _ := endpoint.ParseEndpoint("db:5432", 0)
		r := doctor.Run(context.Background(), ep, doctor.Options{Vantage: v})
		json.NewEncoder(os.Stdout).Encode(r)
		os.Exit(0)
	}
	// The parent: the network namespace of the container's process 4242.
	self := exec.Command("/proc/self/exe")
	for r, err := range doctor.RunFrom(context.Background(), sockets.NamespaceRef{PID: 4242}, self) {
		if err != nil {
			fmt.Println(err) // no such process; not root; ...
			return
		}
		fmt.Println(r.Verdict) // "db:5432 is not reachable from the network namespace of pid 4242 ..."
	}
}
