package doctor

import (
	"strings"
	"testing"
)

func TestWriteText(t *testing.T) {
	r := &Report{
		Target: "198.18.0.2:5432", Class: "refused", Cause: LoopbackOnly, Confidence: Confirmed,
		Verdict: "198.18.0.2:5432 is not reachable: refused — Server bound to loopback only (loopback-only, confirmed)",
		Findings: []Finding{{Cause: LoopbackOnly, Confidence: Confirmed, Issue: "Server bound to loopback only",
			Evidence: "postgres (pid 812) listens on 127.0.0.1:5432; you dialled 198.18.0.2:5432",
			Fix:      "set listen_addresses to 0.0.0.0 or 198.18.0.2 and restart postgres; a very long fix text that has to wrap over several lines of its column"}},
		Checks: []CheckRecord{{Name: "tcp", Status: Fail, Detail: "198.18.0.2:5432 refused ×3 (steady) in 0.2ms", DurationMS: 0.4},
			{Name: "sockets", Status: Fail, Detail: "postgres (pid 812) listens on 127.0.0.1:5432", DurationMS: 3}},
		Next: []string{"run reach check there"},
	}
	var plain, color strings.Builder
	if err := r.WriteText(&plain, TextOptions{Width: 100}); err != nil {
		t.Fatal(err)
	}
	r.WriteText(&color, TextOptions{Color: true, Width: 100})
	out := plain.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "✗ 198.18.0.2:5432 is not reachable") {
		t.Errorf("first line is not the verdict: %q", lines[0])
	}
	verdictAt, ladderAt, tableAt := strings.Index(out, "is not reachable"), strings.Index(out, "Checks walked"), strings.Index(out, "Issue")
	if !(verdictAt < ladderAt && ladderAt < tableAt) {
		t.Errorf("want verdict, then the ladder, then the table:\n%s", out)
	}
	for _, want := range []string{"✗ tcp", "0.4ms", "[loopback-only,", "127.0.0.1:5432;", "To tell these apart:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	inTable := false
	for _, l := range lines {
		inTable = inTable && l != "" || strings.HasPrefix(l, "Issue")
		if n := len([]rune(l)); inTable && n > 100 {
			t.Errorf("table line of %d runes is wider than 100: %q", n, l)
		}
	}
	if strings.Contains(out, "\x1b[") || !strings.Contains(color.String(), "\x1b[31;1m") {
		t.Errorf("colour must appear only when asked for")
	}
}

func TestWrap(t *testing.T) {
	got := wrap("a bb ccc dddddddddddd", 8)
	want := []string{"a bb ccc", "dddddddd", "dddd"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("wrap = %q, want %q", got, want)
	}
}
