package archtest

import (
	"slices"
	"strings"
	"testing"
)

// unix is the one outside package on the allow-list: raw system interfaces
// live behind internal/sys.
const unix = "golang.org/x/sys/unix"

// allowed lists, per package, every package of this module (and x/sys/unix)
// its non-test code imports, and no other. A new arrow is a decision: add it
// here, in the same commit, and the layers test still has to agree; an arrow
// that goes away leaves the list with it. Modelled on tailscale's deptest.
// Never listed: agent -> monitor, hub or web (agents talk to the hub
// over the network); doctor -> agent, hub, monitor or web (remote evidence
// comes through an interface); firewall, sockets, kstat, endpoint -> anything
// that diagnoses.
var allowed = map[string][]string{
	"cmd/reach":         {"internal/cli"},
	"internal/cli":      {"agent", "app", "baseline", "dial", "doctor", "endpoint", "fault", "hub", "internal/bounded", "internal/httpsafe", "internal/version", "monitor", "probe", "scan", "server", "sockets", "web"},
	"hub":               {"agent", "doctor", "endpoint", "internal/httpsafe", "monitor", "netwatch", "probe", "web"},
	"agent":             {"dial", "doctor", "endpoint", "internal/bounded", "internal/httpsafe", "internal/version", "kstat", "netwatch", "probe"},
	"baseline":          {"doctor", "endpoint", "internal/bounded", "internal/version", "monitor", "probe"},
	"dial":              {"app", "endpoint", "probe"},
	"doctor":            {"app", "endpoint", "firewall", "internal/bounded", "internal/sys", "kstat", "probe", "sockets"},
	"monitor":           {"app", "endpoint", "internal/bounded", "internal/sys", "internal/version", "netwatch", "probe"},
	"scan":              {"discover", "endpoint", "internal/rtt", "internal/sys", "probe"},
	"discover":          {"internal/rtt", "internal/sys"},
	"netwatch":          {"internal/sys"},
	"server":            {"internal/sys", "sockets"},
	"web":               {"internal/httpsafe", "monitor"},
	"probe":             {"app", "endpoint", "internal/sys"},
	"app":               {},
	"sockets":           {"internal/sys"},
	"kstat":             {"internal/sys"},
	"internal/httpsafe": {"internal/sys"},
	"firewall":          {},
	"fault":             {},
	"endpoint":          {},
	"internal/sys":      {unix},
	"internal/bounded":  {},
	"internal/netlab":   {unix},
	"internal/testnet":  {},
	"internal/testdb":   {"internal/netlab"},
	"internal/rtt":      {},
	"internal/version":  {},
	"internal/archtest": {},
	"bench":             {},
}

// mine reports whether imp is subject to the allow-list.
func mine(imp string) bool { return strings.HasPrefix(imp, module) || imp == unix }

func TestImportAllowList(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		seen[from] = true
		list, ok := allowed[from]
		if !ok {
			t.Errorf("package %s is not in the import allow-list: add it with the packages it may import", from)
			continue
		}
		for _, imp := range p.Imports {
			if mine(imp) && !slices.Contains(list, rel(imp)) {
				t.Errorf("%s imports %s, which its allow-list does not name: see DESIGN.md's arrows; "+
					"if the arrow is right, add it to allowed in this file", from, rel(imp))
			}
		}
		for _, to := range list {
			if !slices.ContainsFunc(p.Imports, func(imp string) bool { return mine(imp) && rel(imp) == to }) {
				t.Errorf("%s's allow-list names %s, which it does not import: remove it, so that adding "+
					"the arrow stays a decision", from, to)
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if imp == unix && !slices.Contains(list, unix) {
				t.Errorf("%s's tests import %s; put the system call behind internal/sys", from, unix)
			}
		}
	}
	for p := range allowed {
		if !seen[p] {
			t.Errorf("the allow-list names %s, which no longer exists: remove it", p)
		}
	}
}
