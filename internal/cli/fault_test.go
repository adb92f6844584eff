package cli

import (
	"strings"
	"testing"
)

// Usage errors are found before any rule is read or written.
func TestFaultUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fault"}, "give a mode"},
		{[]string{"fault", "refuse", "--port", "80"}, "--for is required"},
		{[]string{"fault", "refuse", "--port", "0", "--for", "1s"}, "--port 0"},
		{[]string{"fault", "refuse", "--port", "70000", "--for", "1s"}, "--port 70000"},
		{[]string{"fault", "drop", "--port", "80", "--for", "2h"}, `--for "2h0m0s"`},
		{[]string{"fault", "drop", "--port", "80", "--for", "0s"}, `--for "0s"`},
		{[]string{"fault", "drop", "--port", "80", "--for", "1s", "--probability", "2"}, "--probability"},
		{[]string{"fault", "drop", "--port", "80", "--for", "1s", "--source", "198.18.0.1/24"}, "use 198.18.0.0/24"},
		{[]string{"fault", "drop", "--port", "80", "--for", "1s", "--source", "db"}, "give a CIDR"},
		{[]string{"fault", "stall", "--port", "80", "--for", "1s"}, `unknown mode "stall"`},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--fault", "refuse"}, "unknown fault"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--fault", "delay-accept"}, "delay-accept=2s"},
	} {
		var out, errb strings.Builder
		code := Run(t.Context(), tc.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != ExitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("reach %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, errb.String(), tc.want)
		}
	}
}
