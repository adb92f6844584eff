package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/testnet"
)

func TestCheckCommand(t *testing.T) {
	open := testnet.Serve(t, nil).String() // each connection held until the test ends
	closedAddr := testnet.ClosedPort(t).String()

	code, out, errs := run(t, "check", open, "--json", "--timeout", "2s")
	var rep struct {
		Target    string `json:"target"`
		Reachable bool   `json:"reachable"`
		Cause     string `json:"cause"`
		Checks    []struct {
			Name       string  `json:"name"`
			Status     string  `json:"status"`
			DurationMS float64 `json:"duration_ms"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK || !rep.Reachable || rep.Cause != "reachable" || len(rep.Checks) == 0 {
		t.Fatalf("check open port: exit %d, %+v, %v\n%s%s", code, rep, err, out, errs)
	}

	code, out, _ = run(t, "check", closedAddr, "--timeout", "2s")
	if code != ExitFail || !strings.Contains(out, "is not reachable: refused") || !strings.Contains(out, "Issue") || !strings.Contains(out, "Checks walked") {
		t.Fatalf("check closed port: exit %d\n%s", code, out)
	}

	for _, args := range [][]string{
		{"check"},
		{"check", "no-port-here"},
		{"check", "127.0.0.1:80", "--timeout", "0s"},
		{"check", "127.0.0.1:80", "--network", "udp"},
		{"check", "127.0.0.1:80", "--network", "tcp6"},
		{"check", "[::1]:80", "--network", "tcp4"},
	} {
		if code, _, errs := run(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errs)
		}
	}
}
