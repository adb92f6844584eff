package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/testnet"
)

func TestWaitReadyAndQuiet(t *testing.T) {
	up := testnet.Serve(t, testnet.Echo).String()
	code, out, errs := runWithInput(t, "", "wait", up, "--timeout", "10s", "-q")
	if code != ExitOK || out != "" || errs != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and silence", code, out, errs)
	}
	code, _, errs = runWithInput(t, "", "wait", up)
	if code != ExitOK || !strings.Contains(errs, up+" ready after") {
		t.Errorf("exit %d, stderr %q; want a ready line", code, errs)
	}
}

func TestWaitTimeoutExplains(t *testing.T) {
	down := testnet.ClosedPort(t).String()
	// Long enough for an attempt to finish on a loaded machine (one takes
	// well under a millisecond here).
	code, _, errs := runWithInput(t, "", "wait", down, "--timeout", "1s", "-q")
	want := "reach: " + down + " still refused after 1s — likely: the server is not running; try: reach check " + down
	if code != ExitTimeout || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stderr %q; want 124 and %q", code, errs, want)
	}
}

func TestWaitAnyAndJSON(t *testing.T) {
	up, down := testnet.Serve(t, testnet.Echo).String(), testnet.ClosedPort(t).String()
	code, out, _ := runWithInput(t, "", "wait", down, up, "--any", "--json", "--timeout", "10s")
	var res struct {
		Ready   bool `json:"ready"`
		Targets []struct {
			Target string `json:"target"`
			Ready  bool   `json:"ready"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitOK {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if !res.Ready || len(res.Targets) != 2 || res.Targets[0].Ready || !res.Targets[1].Ready {
		t.Errorf("result %+v", res)
	}
	// The timeout must pass (down never opens) while up connects, also on a
	// loaded machine.
	code, out, _ = runWithInput(t, "", "wait", down, up, "--json", "--timeout", "1s")
	var fail struct {
		Ready   bool
		Targets []struct{ Target, Class, Hint string }
	}
	if err := json.Unmarshal([]byte(out), &fail); err != nil || code != ExitTimeout {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if fail.Ready || fail.Targets[0].Class != "refused" || !strings.Contains(fail.Targets[0].Hint, "reach check "+down) || fail.Targets[1].Hint != "" {
		t.Errorf("result %+v", fail)
	}
}

func TestWaitRunsCommand(t *testing.T) {
	up := testnet.Serve(t, testnet.Echo).String()
	tests := []struct {
		cmd      []string
		code     int
		out, err string
	}{
		{[]string{"sh", "-c", "echo started"}, 0, "started\n", ""},
		{[]string{"sh", "-c", "exit 3"}, 3, "", ""},
		// CMD's own status passes through unchanged, even the ones reach
		// uses itself: 1, and 124 for a timeout.
		{[]string{"sh", "-c", "exit 1"}, 1, "", ""},
		{[]string{"sh", "-c", "exit 124"}, 124, "", ""},
		{[]string{"reach-no-such-command"}, 127, "", "cannot run"},
		{[]string{"/"}, 126, "", "is it an executable file?"},
	}
	for _, tt := range tests {
		args := append([]string{"wait", up, "-q", "--"}, tt.cmd...)
		code, out, errs := runWithInput(t, "", args...)
		if code != tt.code || out != tt.out || !strings.Contains(errs, tt.err) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, ~%q", tt.cmd, code, out, errs, tt.code, tt.out, tt.err)
		}
	}
	down := testnet.ClosedPort(t).String()
	if code, out, _ := runWithInput(t, "", "wait", down, "--timeout", "100ms", "-q", "--", "sh", "-c", "echo ran"); code != ExitTimeout || out != "" {
		t.Errorf("command ran (%q, exit %d) although the target never came up", out, code)
	}
}

func TestWaitUsage(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string // what the message must name
	}{
		{[]string{"wait"}, "give at least one TARGET"},
		{[]string{"wait", "--", "true"}, "give at least one TARGET"},
		{[]string{"wait", "127.0.0.1:1", "--"}, "nothing after --"},
		{[]string{"wait", "db"}, "missing port"},
		{[]string{"wait", "127.0.0.1:1", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"wait", "127.0.0.1:1", "--interval", "-1s"}, "--interval -1s"},
	} {
		code, _, errs := runWithInput(t, "", tt.args...)
		if code != ExitUsage || !strings.Contains(errs, tt.wantErr) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message naming %q", tt.args, code, errs, tt.wantErr)
		}
	}
}

func TestWaitInterrupted(t *testing.T) {
	down := testnet.ClosedPort(t).String()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"wait", down, "--timeout", "60s", "-q"}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	cancel()
	if code := <-done; code != ExitFail || !strings.Contains(errb.String(), "when interrupted") {
		t.Errorf("exit %d, stderr %q; want 1 and the target's state when interrupted", code, errb.String())
	}
}

// A port that accepts and at once closes (docker-proxy or a load balancer
// whose backend is down) is ready for plain wait, but not with
// --check-accept, which reports it closed-by-peer (dial's TestWaitReadWait
// checks the explanation).
func TestWaitCheckAccept(t *testing.T) {
	addr := testnet.Serve(t, testnet.HangUp).String()
	if code, _, errs := runWithInput(t, "", "wait", addr, "--timeout", "5s", "-q"); code != ExitOK {
		t.Fatalf("plain wait: exit %d, stderr %q; want 0", code, errs)
	}
	code, _, errs := runWithInput(t, "", "wait", addr, "--timeout", "700ms", "--check-accept")
	if code != ExitTimeout || !strings.Contains(errs, addr+" still closed-by-peer") {
		t.Fatalf("--check-accept: exit %d, stderr %q; want 124 and closed-by-peer", code, errs)
	}
}
