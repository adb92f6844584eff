package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/sockets"
)

// RunFrom runs the ladder from inside another network namespace of this
// host, the one ref names (a container's, through one of its processes; an
// ip netns name; a namespace file), and yields the reports.
//
// It does not enter the namespace goroutine by goroutine: the ladder runs
// many goroutines, and setns moves only the calling OS thread. It starts
// child on an OS thread that has entered the namespace, and a process
// inherits the network namespace of the thread that forks it, so the child
// and every thread it makes live there: every socket, route lookup, DNS
// query, /proc/net read and firewall command (iptables-save and nft run as
// its children) is the namespace's. The child also gets a private mount
// namespace where the namespace's own resolv.conf and hosts are bound over
// /etc's, when it has its own (see Vantage.DNS).
//
// child must call ChildVantage, run the ladder with Options.Vantage set to
// what it returns, and write each Report as JSON on stdout, in order, then
// exit 0 or 1: `reach check --json TARGET...` does, and so can a Go program
// that starts itself again (see ExampleRunFrom). Leave child.Stdout unset;
// with child.Stderr unset, the end of the child's stderr is quoted in the
// error when it fails. Stopping the iteration or cancelling ctx kills the
// child.
//
// Errors (yielded with a nil report, once, last) are a *VantageError: no
// such namespace, no right to enter it (CAP_SYS_ADMIN), the child failed.
func RunFrom(ctx context.Context, ref sockets.NamespaceRef, child *exec.Cmd) iter.Seq2[*Report, error] {
	return func(yield func(*Report, error) bool) {
		reports, err := runFrom(ctx, ref, child, yield)
		if err != nil && reports >= 0 {
			yield(nil, err)
		}
	}
}

// runFrom does RunFrom's work; it returns the reports yielded (-1 when the
// caller stopped the iteration) and the error to yield.
func runFrom(ctx context.Context, ref sockets.NamespaceRef, child *exec.Cmd, yield func(*Report, error) bool) (int, error) {
	name := ref.String()
	fail := func(op string, err error) (int, error) {
		return 0, &VantageError{Namespace: name, Op: op, Err: err}
	}
	ns, err := sockets.LookupNamespace(ctx, ref)
	if err != nil {
		return fail("find", err)
	}
	nsFile, err := sys.OpenNetns(ns.Path)
	if err != nil {
		return fail("enter", err)
	}
	defer nsFile.Close()
	if nsFile.Inode() != ns.Inode { // the process exited and its pid was reused
		return fail("enter", fmt.Errorf("%w: %s names another namespace now", os.ErrNotExist, ns.Path))
	}
	w := vantageWire{Vantage: Vantage{Namespace: ns}}
	w.ResolvConf, w.Hosts, w.DNS = resolverFiles(ns)
	if w.ParentMounts, err = sys.MountNamespaceInode("/proc/self/ns/mnt"); err != nil {
		w.ResolvConf, w.Hosts = "", ""
		w.DNS = "lookups used this host's /etc/resolv.conf and /etc/hosts: " + err.Error()
	}
	if w.ResolvConf != "" || w.Hosts != "" {
		privateMounts(child)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return fail("run in", err)
	}
	if child.Env == nil {
		child.Env = os.Environ()
	}
	child.Env = append(child.Env, VantageEnv+"="+string(b))
	stdout, err := child.StdoutPipe()
	if err != nil {
		return fail("run in", err)
	}
	var stderr *tail
	if child.Stderr == nil {
		stderr = &tail{max: 2048}
		child.Stderr = stderr
	}
	// Start forks on Do's locked thread, inside the namespace.
	if err := nsFile.Do(child.Start); err != nil {
		if errors.Is(err, sys.ErrNetnsRestore) && child.Process != nil {
			// The child started inside; only our thread is lost.
			err = nil
		} else {
			return fail("enter", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { child.Process.Kill() })
	defer stop()
	n := 0
	dec := json.NewDecoder(stdout)
	var decodeErr error
	for {
		var r Report
		if err := dec.Decode(&r); err != nil {
			if err != io.EOF {
				decodeErr = err
			}
			break
		}
		n++
		if !yield(&r, nil) {
			child.Process.Kill()
			child.Wait()
			return -1, nil
		}
	}
	if decodeErr != nil {
		child.Process.Kill()
	}
	err = child.Wait()
	if ctx.Err() != nil {
		return n, &VantageError{Namespace: name, Op: "run in", Err: ctx.Err()}
	}
	var exit *exec.ExitError
	switch {
	case decodeErr != nil:
		err = fmt.Errorf("reading its report: %w", decodeErr)
	case errors.As(err, &exit) && exit.ExitCode() == 1 && n > 0:
		err = nil // a target is not reachable: said in its report
	case err == nil && n == 0:
		err = errors.New("it wrote no report")
	}
	if err == nil {
		return n, nil
	}
	ve := &VantageError{Namespace: name, Op: "run in", Err: err}
	if stderr != nil {
		ve.Stderr = strings.TrimSpace(stderr.String())
	}
	return n, ve
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
