package main

// End-to-end tests of the built binary: what a newcomer types, checked from
// outside the process (exit status, stdout, stderr). Only 127.0.0.1 is used.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
)

var reachBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reach-e2e-")
	if err != nil {
		panic(err)
	}
	reachBin = filepath.Join(dir, "reach")
	if out, err := exec.Command("go", "build", "-o", reachBin, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func reach(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, reachBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("reach %v: %v", args, err)
	}
	return r
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(127\.0\.0\.1:\d+)`)

// startServer runs `reach serve` on an ephemeral loopback port and returns
// the address it reports in its log, and its pid.
func startServer(t *testing.T) (addr string, pid int) {
	t.Helper()
	cmd := exec.Command(reachBin, "serve", "--listen", "127.0.0.1:0", "--log-format", "text", "--drain", "1s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("reach serve did not exit 0 on SIGINT: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("reach serve did not stop within 10s of SIGINT")
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case addr = <-found:
	case <-time.After(10 * time.Second):
		t.Fatal("reach serve did not log its listening address within 10s")
	}
	return addr, cmd.Process.Pid
}

func TestServeConnectEcho(t *testing.T) {
	addr, _ := startServer(t)
	r := reach(t, "hello", "connect", addr)
	if r.code != 0 || r.stdout != "hello" {
		t.Fatalf("printf hello | reach connect %s: exit %d stdout %q stderr %q", addr, r.code, r.stdout, r.stderr)
	}
}

func TestSecondServeNamesHolder(t *testing.T) {
	addr, pid := startServer(t)
	r := reach(t, "", "serve", "--listen", addr)
	if r.code != 1 {
		t.Fatalf("second serve on %s: exit %d, want 1; stderr %q", addr, r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, strconv.Itoa(pid)) || !strings.Contains(r.stderr, "reach") {
		t.Fatalf("second serve should name the holder (reach, pid %d); stderr:\n%s", pid, r.stderr)
	}
}

func TestCheckUpAndDown(t *testing.T) {
	addr, _ := startServer(t)
	if r := reach(t, "", "check", addr); r.code != 0 || !strings.Contains(r.stdout, "reachable") {
		t.Fatalf("check %s: exit %d\n%s%s", addr, r.code, r.stdout, r.stderr)
	}
	down := testnet.ClosedPort(t).String()
	r := reach(t, "", "check", down, "--json")
	if r.code != 1 {
		t.Fatalf("check %s: exit %d, want 1\n%s%s", down, r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Reachable bool
		Class     string
		Cause     string
		Findings  []struct{ Issue, Evidence, Fix string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --json output is not one JSON object: %v\n%s", err, r.stdout)
	}
	if rep.Reachable || rep.Class != "refused" || rep.Cause == "" || len(rep.Findings) == 0 || rep.Findings[0].Fix == "" {
		t.Fatalf("report for a closed port: %+v", rep)
	}
	if r := reach(t, "", "check", "db:99999"); r.code != 2 || !strings.Contains(r.stderr, `"db:99999": port out of range 1-65535`) {
		t.Fatalf("bad target: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestWaitThenRun(t *testing.T) {
	addr, _ := startServer(t)
	r := reach(t, "", "wait", addr, "--timeout", "10s", "-q", "--", "sh", "-c", "echo ready; exit 3")
	if r.code != 3 || strings.TrimSpace(r.stdout) != "ready" {
		t.Fatalf("wait then run: exit %d stdout %q stderr %q (want the command's status 3)", r.code, r.stdout, r.stderr)
	}
	down := testnet.ClosedPort(t).String()
	r = reach(t, "", "wait", down, "--timeout", "1s")
	if r.code != 124 || !strings.Contains(r.stderr, "refused") || !strings.Contains(r.stderr, "reach check") {
		t.Fatalf("wait on a closed port: exit %d stderr %q", r.code, r.stderr)
	}
}

// reach wait -- CMD becomes CMD (exec), as wait-for-it's exec "$@" does: CMD
// keeps reach's pid, so a supervisor's signals reach it as sent. Run as a
// child, an interrupt (Ctrl-C in psql) reached it as SIGTERM, and it was
// killed 10s after that.
func TestWaitExecsCommand(t *testing.T) {
	addr, _ := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script := `trap 'echo got INT; exit 0' INT; trap 'echo got TERM; exit 0' TERM; echo pid $$; sleep 20 & wait`
	cmd := exec.CommandContext(ctx, reachBin, "wait", addr, "-q", "--", "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatalf("no output from the command: %v", cmd.Wait())
	}
	if want := "pid " + strconv.Itoa(cmd.Process.Pid); lines.Text() != want {
		t.Errorf("the command printed %q, want %q: it runs as a child of reach, not in its place", lines.Text(), want)
	}
	cmd.Process.Signal(os.Interrupt)
	if !lines.Scan() || lines.Text() != "got INT" {
		t.Errorf("after SIGINT the command printed %q, want %q", lines.Text(), "got INT")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v, want the command's status 0", err)
	}
}

// A second Ctrl-C during the drain ends the server at once.
func TestSecondInterruptForcesExit(t *testing.T) {
	cmd := exec.Command(reachBin, "serve", "--listen", "127.0.0.1:0", "--log-format", "text", "--drain", "60s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	waitFor := func(re *regexp.Regexp) []string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("reach serve exited before logging %v", re)
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-deadline:
				t.Fatalf("no log line matching %v within 10s", re)
			}
		}
	}
	addr := waitFor(listeningRE)[1]
	conn, err := net.Dial("tcp", addr) // held open so the drain waits
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd.Process.Signal(os.Interrupt)
	waitFor(regexp.MustCompile(`shutting down`))
	// The handler is restored just after the first signal is taken; under
	// load a second signal may still land before that, so repeat it (bounded).
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	for {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
			return
		case <-tick.C:
		case <-deadline:
			t.Fatal("repeated interrupts did not end the server within 15s (drain is 60s)")
		}
	}
}
