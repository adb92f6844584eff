package baseline_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/reach-tools/reach/baseline"
)

// A pre/post pair around a change: save the baseline, make the change
// (here: a server stops), diff.
func Example() {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	targets, _ := baseline.ParseTargets([]string{ln.Addr().String()})
	opt := baseline.Options{Timeout: time.Second}
	pre, err := baseline.Save(ctx, targets, opt)
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "baseline-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "pre.json")
	if err := baseline.Write(path, pre, false); err != nil {
		fmt.Println(err)
		return
	}

	ln.Close() // the change

	saved, err := baseline.Read(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := baseline.Diff(ctx, saved, baseline.DiffOptions{Options: opt})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range r.Broken {
		fmt.Printf("broken: was %s, now %s (%s)\n", c.Was.Class, c.Now.Class, c.Now.Cause)
	}
	fmt.Println("changed:", r.Differs(), "unchanged:", r.Unchanged)
	// Output:
	// broken: was open, now refused (not-listening)
	// changed: true unchanged: 0
}
