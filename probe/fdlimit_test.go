//go:build unix

package probe_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// TestLocalErrorOutOfFiles produces EMFILE for real: a child test process
// lowers its own RLIMIT_NOFILE to the file descriptors it has open and probes
// a loopback listener. The limit is per process, so the child keeps it from
// the parallel tests here.
func TestLocalErrorOutOfFiles(t *testing.T) {
	if os.Getenv("PROBE_FDLIMIT_CHILD") != "" {
		outOfFilesChild(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLocalErrorOutOfFiles$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "PROBE_FDLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "class=local-error errno=24") {
		t.Fatalf("child did not report local-error with EMFILE:\n%s", out)
	}
}

func outOfFilesChild(t *testing.T) {
	// Listening also starts the poller, which needs fds of its own.
	ep := endpoint.FromAddrPort(testnet.AddrPort(testnet.Listen(t)))

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// The kernel hands out the lowest free descriptor: with the limit set to
	// it, the probe's socket is the first one over.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	next := f.Fd()
	f.Close()
	low := lim
	low.Cur = uint64(next)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r := probe.Run(ctx, ep, probe.Options{Timeout: 5 * time.Second})
	cancel()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("class=%s errno=%d err=%v\n", r.Class, r.Errno, r.Err)
	if r.Class != probe.LocalError || r.Errno != syscall.EMFILE {
		t.Errorf("probe with no descriptors left: class %s errno %v, want local-error EMFILE", r.Class, r.Errno)
	}
}
