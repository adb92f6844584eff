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
		{"check", "127.0.0.1:80", "--hold", "-1s"},
		{"check", "127.0.0.1:80", "--network", "udp"},
		{"check", "127.0.0.1:80", "--network", "tcp6"},
		{"check", "[::1]:80", "--network", "tcp4"},
	} {
		if code, _, errs := run(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errs)
		}
	}
}

// --hold sets how long the tcp check holds a connection; 0 holds none.
func TestCheckHold(t *testing.T) {
	addr := testnet.Serve(t, nil).String() // connections kept open
	for _, tt := range []struct{ hold, want string }{
		{"200ms", "held a connection to " + addr + " for 200ms"},
		{"0", ""},
	} {
		code, out, errs := run(t, "check", addr, "--hold", tt.hold, "--json")
		var rep struct {
			Checks []struct {
				Name   string `json:"name"`
				Detail string `json:"detail"`
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK {
			t.Fatalf("--hold %s: exit %d, %v\n%s%s", tt.hold, code, err, out, errs)
		}
		var tcp string
		for _, c := range rep.Checks {
			if c.Name == "tcp" {
				tcp = c.Detail
			}
		}
		held := strings.Contains(tcp, "held a connection")
		if (tt.want == "" && held) || (tt.want != "" && !strings.Contains(tcp, tt.want)) {
			t.Errorf("--hold %s: tcp detail %q, want %q", tt.hold, tcp, tt.want)
		}
	}
}
