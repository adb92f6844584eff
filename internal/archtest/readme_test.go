package archtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeRow is a row of README's package table: | `pkg` | what it holds |.
var readmeRow = regexp.MustCompile("^\\| `([a-z/]+)` \\|")

// README's "Packages" table names every package once, in the order imports
// flow (no package listed below one of a lower layer), test helpers last,
// and nothing else.
func TestReadmeListsEveryPackage(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "\n## Packages\n")
	if !ok {
		t.Fatal(`README.md has no "## Packages" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var listed []string
	for line := range strings.Lines(section) {
		if m := readmeRow.FindStringSubmatch(line); m != nil {
			listed = append(listed, m[1])
		}
	}
	var have []string
	for _, p := range listPackages(t) {
		have = append(have, rel(p.ImportPath))
	}
	for _, p := range have {
		if !slices.Contains(listed, p) {
			t.Errorf("README's package table does not list %s: add a row with its one-line doc", p)
		}
	}
	last, inHelpers := "", false
	for i, p := range listed {
		helper := testOnly[p] || p == "internal/archtest" || p == "bench"
		switch {
		case !slices.Contains(have, p):
			t.Errorf("README's package table lists %s, which does not exist", p)
		case slices.Index(listed, p) != i:
			t.Errorf("README's package table lists %s twice", p)
		case inHelpers && !helper:
			t.Errorf("README's package table lists %s among the test helpers: they come last", p)
		case !helper && last != "" && layer(p) > layer(last):
			t.Errorf("README's package table lists %s (layer %d) below %s (layer %d): list them as imports flow",
				p, layer(p), last, layer(last))
		}
		if helper {
			inHelpers = true
		} else {
			last = p
		}
	}
}
