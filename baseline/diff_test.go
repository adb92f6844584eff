package baseline

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/probe"
)

func entry(target string, class probe.Class, connectMS float64) Entry {
	return Entry{Target: Target{Source: LocalSource, Target: target}, Class: class, ConnectMS: connectMS}
}

func TestCompare(t *testing.T) {
	def := Threshold{}
	for _, tc := range []struct {
		name      string
		was, now  Entry
		th        Threshold
		kind      Kind // "" for unchanged
		noteHas   string
		unchanged int
	}{
		{name: "open stays open", was: entry("a:1", probe.Open, 0.1), now: entry("a:1", probe.Open, 0.15), unchanged: 1},
		{name: "refused stays refused", was: entry("a:1", probe.Refused, 0), now: entry("a:1", probe.Refused, 0), unchanged: 1},
		{name: "open to timeout", was: entry("a:1", probe.Open, 1), now: entry("a:1", probe.Timeout, 0), kind: Broken},
		{name: "open to net-unreachable", was: entry("a:1", probe.Open, 1), now: entry("a:1", probe.NetUnreachable, 0), kind: Broken},
		{name: "refused to open", was: entry("a:1", probe.Refused, 0), now: entry("a:1", probe.Open, 1), kind: Opened,
			noteHas: "a service started listening"},
		{name: "filtered to open", was: entry("a:1", probe.Timeout, 0), now: entry("a:1", probe.Open, 1), kind: Opened,
			noteHas: "a firewall rule opened it"},
		{name: "refused to timeout", was: entry("a:1", probe.Refused, 0), now: entry("a:1", probe.Timeout, 0), kind: Changed},
		// Slower needs both: the factor and the absolute amount.
		{name: "twice and 60ms more", was: entry("a:1", probe.Open, 50), now: entry("a:1", probe.Open, 110), kind: Slower,
			noteHas: "connect time 110 ms, was 50 ms"},
		{name: "10x but 0.9ms more", was: entry("a:1", probe.Open, 0.1), now: entry("a:1", probe.Open, 1), unchanged: 1},
		{name: "100ms more but 1.3x", was: entry("a:1", probe.Open, 300), now: entry("a:1", probe.Open, 400), unchanged: 1},
		{name: "custom threshold", was: entry("a:1", probe.Open, 0.1), now: entry("a:1", probe.Open, 1),
			th: Threshold{Factor: 5, By: 500 * time.Microsecond}, kind: Slower},
		{name: "faster", was: entry("a:1", probe.Open, 100), now: entry("a:1", probe.Open, 1), unchanged: 1},
		{name: "exactly at the threshold", was: entry("a:1", probe.Open, 50), now: entry("a:1", probe.Open, 100), kind: Slower},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := tc.th
			if th == (Threshold{}) {
				th = def
			}
			r := Compare([]Entry{tc.was}, []Entry{tc.now}, th)
			if r.Total != 1 || r.Unchanged != tc.unchanged {
				t.Errorf("total %d unchanged %d, want 1 and %d", r.Total, r.Unchanged, tc.unchanged)
			}
			lists := map[Kind][]Change{Broken: r.Broken, Opened: r.Opened, Changed: r.Changed, Slower: r.Slower}
			for k, l := range lists {
				want := 0
				if k == tc.kind {
					want = 1
				}
				if len(l) != want {
					t.Fatalf("%s: %d changes, want %d (%+v)", k, len(l), want, r)
				}
				if want == 1 {
					c := l[0]
					if c.Kind != k || c.Was.Class != tc.was.Class || c.Now.Class != tc.now.Class || c.Target.Target != "a:1" {
						t.Errorf("change %+v", c)
					}
					if !strings.Contains(c.Note, tc.noteHas) {
						t.Errorf("note %q lacks %q", c.Note, tc.noteHas)
					}
				}
			}
			if r.Differs() != (tc.kind != "") {
				t.Errorf("Differs() = %v", r.Differs())
			}
		})
	}
}

// Pairs are matched by source, name, target and where they leave from, not
// by position; a pair only in now is not counted.
func TestCompareMatchesByKey(t *testing.T) {
	a, b := entry("a:1", probe.Open, 1), entry("b:2", probe.Refused, 0)
	named := a
	named.Name = "web"
	from := a
	from.SourceAddr = "198.18.0.1"
	extra := entry("c:3", probe.Open, 1)
	nowB := b
	nowB.Class = probe.Open
	r := Compare([]Entry{a, b, named, from}, []Entry{extra, nowB, from, named, a}, Threshold{})
	if r.Total != 4 || r.Unchanged != 3 || len(r.Opened) != 1 || r.Opened[0].Target.Target != "b:2" {
		t.Errorf("got %+v", r)
	}
	missing := Compare([]Entry{a, b}, []Entry{a}, Threshold{})
	if missing.Total != 2 || missing.Unchanged != 1 || len(missing.Gone) != 1 || missing.Gone[0] != b.Target ||
		!missing.Differs() {
		t.Errorf("a pair gone: %+v", missing)
	}
}

// The JSON has [] for empty lists, never null: pipelines test .broken == [].
func TestReportJSONHasNoNullLists(t *testing.T) {
	r := Compare([]Entry{entry("a:1", probe.Open, 1)}, []Entry{entry("a:1", probe.Open, 1)}, Threshold{})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "null") {
		t.Errorf("null in %s", s)
	}
	for _, k := range []string{`"broken":[]`, `"newly_open":[]`, `"changed":[]`, `"slower":[]`, `"gone":[]`, `"schema":"reach.baseline-diff/v1"`} {
		if !strings.Contains(s, k) {
			t.Errorf("%s lacks %s", s, k)
		}
	}
}
