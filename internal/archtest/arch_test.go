package archtest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/reach-tools/reach"

type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	Doc        string
	Imports    []string
	GoFiles    []string

	TestImports, XTestImports []string
	TestGoFiles, XTestGoFiles []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 3 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// layer orders packages: a package may import only packages of a lower layer
// (or the same package tree for internal/sys). See DESIGN.md.
func layer(p string) int {
	switch {
	case p == "cmd/reach":
		return 5
	case p == "internal/cli":
		return 4
	case p == "hub": // composes the features: the monitor, the dashboard, the agents' hub
		return 3
	case p == "endpoint", p == "app", p == "internal/sys", p == "internal/bounded", p == "internal/rtt", p == "internal/version":
		return 0
	case p == "internal/httpsafe": // the bounds every HTTP server shares, below the features
		return 1
	case p == "probe", p == "discover", p == "netwatch", p == "sockets", p == "kstat", p == "firewall", p == "internal/netlab", p == "internal/testnet", p == "internal/archtest":
		return 1
	}
	return 2 // dial, server, doctor, scan, monitor, web, agent
}

// testOnly are the packages of test helpers: the namespace lab, the
// loopback sockets and the real database servers.
var testOnly = map[string]bool{"internal/netlab": true, "internal/testnet": true, "internal/testdb": true}

func TestImportsFlowOneWay(t *testing.T) {
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := rel(imp)
			if testOnly[to] && !testOnly[from] { // testdb starts its servers in netlab's hosts
				t.Errorf("%s imports %s, a test helper; only _test files may", from, to)
			}
			if layer(to) >= layer(from) && !(layer(from) == 2 && layer(to) == 2) {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must flow cmd -> cli -> hub -> features -> probe/sockets -> endpoint/internal/sys", from, layer(from), to, layer(to))
			}
		}
	}
}

func TestEveryPackageIsDocumented(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", rel(p.ImportPath))
		}
	}
}

// Library packages report errors; only cmd/reach decides the exit status.
func TestLibrariesNeverExit(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" {
			continue
		}
		for _, f := range p.GoFiles {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok {
					name := id.Name + "." + sel.Sel.Name
					switch name {
					case "os.Exit", "log.Fatal", "log.Fatalf", "log.Fatalln", "log.Panic":
						t.Errorf("%s/%s calls %s; return an error instead", rel(p.ImportPath), f, name)
					}
				}
				return true
			})
		}
	}
}
