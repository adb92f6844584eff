package cli

import (
	"strings"
	"testing"
)

// A scan far past --max-probes is refused with its size and the flag value
// that confirms it; nothing is sent (Scan returns before its engine
// exists). The issue's /12 with every port was accepted: 68.7 billion
// probes (scan's TestHostileScanSize refuses that one; a /16 is quicker
// to expand).
func TestHostileScanSizeRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"scan", "198.18.0.0/16", "-p-"}, []string{
			"reach: 65,536 hosts × 65,535 ports is 4,294,901,760 probes, more than --max-probes 16,777,216: nothing was sent",
			"To confirm a scan this size, give --max-probes 4294901760; or scan fewer hosts or ports"}},
		{[]string{"scan", "198.18.0.0/24", "-p-", "--max-probes", "1000"}, []string{
			"256 hosts × 65,535 ports is 16,776,960 probes, more than --max-probes 1,000", "give --max-probes 16776960"}},
		{[]string{"scan", "198.18.0.0/24", "-p-", "--max-probes", "-1"}, []string{
			"--max-probes -1: give a number of probes (hosts × ports), or 0 for no limit"}},
	} {
		code, out, errs := run(t, tc.args...)
		if code != ExitUsage || out != "" {
			t.Errorf("%v: exit %d, stdout %q, want usage (2) and nothing on stdout", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errs)
			}
		}
	}
}
