package archtest

import (
	"slices"
	"testing"
)

// forbidden lists imports that the layers alone allow but the design does
// not: agents talk to the hub over the network, and the doctor gets remote
// evidence through an interface.
var forbidden = map[string][]string{
	"agent":  {"monitor", "hub", "web"},
	"doctor": {"agent", "hub", "monitor", "web"},
}

func TestForbiddenImports(t *testing.T) {
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if slices.Contains(forbidden[from], rel(imp)) {
				t.Errorf("%s imports %s, which it must not (see DESIGN.md)", from, rel(imp))
			}
		}
	}
}
