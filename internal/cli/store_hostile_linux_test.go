package cli

import (
	"context"
	"errors"
	"github.com/reach-tools/reach/internal/testnet"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reachProcess is the built reach running; exited is closed when it ends,
// and err is then its Wait error.
type reachProcess struct {
	cmd    *exec.Cmd
	errs   *testnet.Buffer
	exited chan struct{}
	err    error
}

// wait waits for the process to end, 30 s at most.
func (p *reachProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatalf("reach did not end within 30s:\n%s", p.errs)
		return nil
	}
}

// startReach starts the built reach with args and waits (30 s at most) for
// its stderr to say the dashboard is up; the process is killed at cleanup.
func startReach(t *testing.T, bin string, args ...string) *reachProcess {
	t.Helper()
	p := &reachProcess{cmd: exec.Command(bin, args...), errs: &testnet.Buffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.errs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.After(30 * time.Second)
	for !strings.Contains(p.errs.String(), "dashboard http") {
		select {
		case <-p.exited:
			t.Fatalf("reach %s ended: %v\n%s", strings.Join(args, " "), p.err, p.errs)
		case <-deadline:
			t.Fatalf("reach %s did not start within 30s:\n%s", strings.Join(args, " "), p.errs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

// Issue 11, row 9: two reach watch on one SQLite file both ran, and every
// sample was stored twice. The second now exits naming the first's pid;
// after a kill -9 of the first, the next one takes the store over and says
// so; after a clean stop, nothing is left to take over.
func TestHostileTwoWatchesOneStore(t *testing.T) {
	bin := buildReach(t)
	dir := t.TempDir()
	config, store := filepath.Join(dir, "reach.yaml"), filepath.Join(dir, "reach.db")
	writeConfig(t, config, "endpoints:\n  - {name: a, target: 127.0.0.1:1, interval: 1h}\n")
	args := []string{"watch", "-c", config, "--store", store, "--listen", "127.0.0.1:0", "--no-doctor"}

	first := startReach(t, bin, args...)
	pid := strconv.Itoa(first.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitFail || !strings.Contains(string(out), "in use by another reach (pid "+pid+",") ||
		!strings.Contains(string(out), "use PostgreSQL for replicas") {
		t.Fatalf("second watch: %v, output:\n%s\nwant exit %d naming pid %s", err, out, ExitFail, pid)
	}

	first.cmd.Process.Signal(syscall.SIGKILL)
	first.wait(t)
	third := startReach(t, bin, args...)
	if !strings.Contains(third.errs.String(), "took over the lock") || !strings.Contains(third.errs.String(), "pid="+pid) {
		t.Errorf("after kill -9 of pid %s, no log line says the store was taken over:\n%s", pid, third.errs)
	}
	third.cmd.Process.Signal(syscall.SIGTERM)
	if err := third.wait(t); err != nil {
		t.Fatalf("watch stopped by SIGTERM: %v\n%s", err, third.errs)
	}
	if b, err := os.ReadFile(store + ".lock"); err != nil || len(b) != 0 {
		t.Errorf("after a clean stop the lock file holds %q (%v), want it empty", b, err)
	}
	if fourth := startReach(t, bin, args...); strings.Contains(fourth.errs.String(), "took over") {
		t.Errorf("after a clean stop, the next watch took over a lock:\n%s", fourth.errs)
	}
}
