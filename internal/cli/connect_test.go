package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/testnet"
)

// runWithInput runs a reach command line with the given standard input.
func runWithInput(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestConnectPipesThroughFirstThatAccepts(t *testing.T) {
	up, down := testnet.Serve(t, testnet.Echo).String(), testnet.ClosedPort(t).String()
	for _, policy := range []string{"ordered", "race", "round-robin", "random"} {
		t.Run(policy, func(t *testing.T) {
			code, out, errs := runWithInput(t, "hello\n", "connect", down, up, "--policy", policy)
			if code != ExitOK || out != "hello\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the echo", code, out, errs)
			}
			if !strings.Contains(errs, "connected to "+up) {
				t.Errorf("stderr %q does not say which endpoint was used", errs)
			}
			if policy == "ordered" && !strings.Contains(errs, "attempt 1: "+down+": refused") {
				t.Errorf("stderr %q does not report the refused attempt", errs)
			}
		})
	}
}

func TestConnectFailureExplainsEachEndpoint(t *testing.T) {
	a, b := testnet.ClosedPort(t).String(), testnet.ClosedPort(t).String()
	code, out, errs := runWithInput(t, "", "connect", a, b)
	if code != ExitFail || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and no output", code, out)
	}
	for _, ep := range []string{a, b} {
		if want := "reach: connect " + ep + ": refused — "; !strings.Contains(errs, want) {
			t.Errorf("stderr %q lacks %q", errs, want)
		}
		if want := "try: reach check " + ep; !strings.Contains(errs, want) {
			t.Errorf("stderr %q lacks %q", errs, want)
		}
	}
}

func TestConnectProbeOnlyJSON(t *testing.T) {
	up, down := testnet.Serve(t, testnet.Echo).String(), testnet.ClosedPort(t).String()
	code, out, errs := runWithInput(t, "not sent", "connect", down, up, "-z", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var rep struct {
		Connected bool   `json:"connected"`
		Endpoint  string `json:"endpoint"`
		Attempts  []struct {
			N     int    `json:"attempt"`
			Class string `json:"class"`
			Addr  string `json:"addr"`
			Errno int    `json:"errno"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if !rep.Connected || rep.Endpoint != up || len(rep.Attempts) != 2 ||
		rep.Attempts[0].Class != "refused" || rep.Attempts[0].Addr != down || rep.Attempts[0].Errno == 0 ||
		rep.Attempts[1].Class != "open" || rep.Attempts[1].N != 2 {
		t.Errorf("report %+v", rep)
	}

	code, out, _ = runWithInput(t, "", "connect", down, "-z", "--json")
	var fail struct {
		Connected bool `json:"connected"`
		Failed    []struct{ Endpoint, Class, Hint string }
	}
	if err := json.Unmarshal([]byte(out), &fail); err != nil || code != ExitFail {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if fail.Connected || len(fail.Failed) != 1 || fail.Failed[0].Class != "refused" || fail.Failed[0].Hint != "reach check "+down {
		t.Errorf("failure report %+v", fail)
	}
}

func TestConnectUsage(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string // what the message must name
	}{
		{[]string{"connect"}, "give at least one TARGET"},
		{[]string{"connect", "db:99999"}, "port out of range"},
		{[]string{"connect", "127.0.0.1:1", "--policy", "fastest"}, "fastest"},
		{[]string{"connect", "127.0.0.1:1", "--timeout", "-1s"}, "--timeout -1s"},
		{[]string{"connect", "127.0.0.1:1", "--attempt-delay", "-1s"}, "--attempt-delay -1s"},
		{[]string{"connect", "127.0.0.1:1", "--backoff-max", "-1s"}, "--backoff-max -1s"},
		// 0 used to mean the library default silently: 3s, 250ms, and
		// 2 minutes for --backoff-max, the opposite of what it reads as.
		{[]string{"connect", "127.0.0.1:1", "--timeout", "0"}, "--timeout 0s"},
		{[]string{"connect", "127.0.0.1:1", "--attempt-delay", "0"}, "--attempt-delay 0s"},
		{[]string{"connect", "127.0.0.1:1", "--backoff-max", "0"}, "--backoff-max 0s"},
		{[]string{"connect", "127.0.0.1:1", "--retries", "-2"}, "--retries -2"},
	} {
		code, _, errs := runWithInput(t, "", tt.args...)
		if code != ExitUsage || !strings.Contains(errs, tt.wantErr) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message naming %q", tt.args, code, errs, tt.wantErr)
		}
	}
}

func TestConnectVerboseLogsEveryAttempt(t *testing.T) {
	up, down := testnet.Serve(t, testnet.Echo).String(), testnet.ClosedPort(t).String()
	code, _, errs := runWithInput(t, "", "connect", down, up, "-z", "-v")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"endpoint=" + down + " class=refused attempt=1", "errno=" + strconv.Itoa(int(syscall.ECONNREFUSED)), "endpoint=" + up + " class=open attempt=2"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q lacks %q", errs, want)
		}
	}
}

func TestConnectRetriesTryEveryTargetEachRound(t *testing.T) {
	a, b := testnet.ClosedPort(t).String(), testnet.ClosedPort(t).String()
	code, out, _ := runWithInput(t, "", "connect", a, b, "--retries", "6", "--backoff-max", "1ms", "-z", "--json")
	var rep struct{ Attempts []struct{ Class string } }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitFail {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if len(rep.Attempts) != 14 {
		t.Errorf("%d attempts, want 14 (7 rounds × 2 targets)", len(rep.Attempts))
	}
}

// Between rounds connect says why nothing happens: the round failed and
// when the next starts. --quiet keeps it silent.
func TestConnectAnnouncesRetryPause(t *testing.T) {
	a := testnet.ClosedPort(t).String()
	code, _, errOut := runWithInput(t, "", "connect", a, "--retries", "2", "--backoff-max", "20ms", "-z")
	if code != ExitFail || strings.Count(errOut, "failed; next round in ") != 2 || !strings.Contains(errOut, "reach: round 1 failed; next round in ") {
		t.Errorf("exit %d, stderr:\n%s\nwant two 'round N failed; next round in' lines", code, errOut)
	}
	_, _, quietErr := runWithInput(t, "", "connect", a, "--retries", "2", "--backoff-max", "20ms", "-z", "-q")
	if strings.Contains(quietErr, "next round") {
		t.Errorf("--quiet printed the pause:\n%s", quietErr)
	}
}

// The server answers only after our end of input: connect must half-close,
// not close, so the answer still arrives.
func TestConnectHalfCloses(t *testing.T) {
	addr := testnet.Serve(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		io.WriteString(c, "got "+strconv.Itoa(int(n))+" bytes\n")
	})
	code, out, errs := runWithInput(t, "abc", "connect", addr.String(), "-q")
	if code != ExitOK || out != "got 3 bytes\n" || errs != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want the answer sent after EOF", code, out, errs)
	}
}
