package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// reach fault list --json: one line per fault, valid against
// schema/reach.fault.v1.json; none, no line. The faults are applied in a
// namespace of the test's own, so no rule lands in this host's tables.
func TestFaultListJSONSchema(t *testing.T) {
	h := netlab.New(t).Host("faults")
	bin := buildReach(t)
	out, errs, code := reachIn(t, bin, h, "", "fault", "list", "--json")
	if code != 0 || out != "" {
		t.Fatalf("no fault: exit %d, stdout %q (want nothing), stderr %q", code, out, errs)
	}
	h.Start(t, bin, "fault", "refuse", "--port", "7", "--for", "1m", "--no-remover")
	h.Start(t, bin, "fault", "drop", "--port", "9", "--for", "1m", "--probability", "0.5",
		"--source", "198.18.0.0/24", "--no-remover")
	if !testnet.Poll(20*time.Second, func() bool {
		out, _, _ = reachIn(t, bin, h, "", "fault", "list", "--json")
		return strings.Count(out, "\n") == 2
	}) {
		t.Fatalf("two faults not listed within 20s:\n%s", out)
	}
	recs := validLines(t, "reach.fault.v1.json", out, 2)
	invalid(t, "reach.fault.v1.json", recs[0], "no schema", func(r map[string]any) { delete(r, "schema") })
	invalid(t, "reach.fault.v1.json", recs[0], "owner null", func(r map[string]any) { r["owner"] = nil })
}
