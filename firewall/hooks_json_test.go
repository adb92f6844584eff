package firewall

import (
	"encoding/json"
	"testing"
)

// An agent sends its rules as JSON: a chain no base chain reaches must
// arrive as such, not as "reached from any hook".
func TestHooksSurviveJSON(t *testing.T) {
	for _, hooks := range [][]string{nil, {}, {"input"}} {
		b, err := json.Marshal(Rule{Chain: "X", Hooks: hooks})
		if err != nil {
			t.Fatal(err)
		}
		var r Rule
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if (r.Hooks == nil) != (hooks == nil) || len(r.Hooks) != len(hooks) {
			t.Errorf("hooks %#v came back as %#v (%s)", hooks, r.Hooks, b)
		}
	}
}
