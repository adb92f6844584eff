package monitor

import (
	"strings"
	"testing"
)

// Issue 11, row 8: a second YAML document was ignored without a word, and
// the endpoints in it never watched.
func TestHostileTwoDocumentConfig(t *testing.T) {
	const ep = "endpoints:\n  - {name: a, target: '127.0.0.1:1'}\n"
	for _, tc := range []struct{ name, src, want string }{
		{"second document", ep + "---\n" + ep, "reach.yaml:3: a second YAML document starts here (---)"},
		{"after empty ones", ep + "---\n---\n# x\n---\n" + ep, "reach.yaml:6: a second YAML document"},
		{"second not YAML", ep + "---\n- [\n", "reach.yaml:4: not valid YAML"},
		{"trailing ---", ep + "---\n", ""},
		{"leading ---", "---\n" + ep, ""},
		{"end marker", ep + "...\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig("reach.yaml", []byte(tc.src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && len(cfg.Endpoints) != 1:
				t.Fatalf("got %d endpoints, want 1", len(cfg.Endpoints))
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("got %v\nwant %s...", err, tc.want)
			}
		})
	}
}
