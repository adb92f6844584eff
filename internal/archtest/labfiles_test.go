package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Tests that build network namespaces (netlab.New) are Linux-only and need
// root; they live in files named lab_linux_test.go, or TOPIC_lab_linux_test.go
// when a package has several, so one glob finds them and the build tag is
// the name. The lab's own tests are exempt.
func TestLabTestFilesNamed(t *testing.T) {
	for _, p := range listPackages(t) {
		if rel(p.ImportPath) == "internal/netlab" {
			continue
		}
		for _, f := range slices.Concat(p.TestGoFiles, p.XTestGoFiles) {
			if strings.HasSuffix(f, "lab_linux_test.go") {
				continue
			}
			if buildsLab(t, filepath.Join(p.Dir, f)) {
				t.Errorf("%s/%s builds a netlab lab: name it lab_linux_test.go or TOPIC_lab_linux_test.go", rel(p.ImportPath), f)
			}
		}
	}
}

// buildsLab reports whether the file calls netlab.New.
func buildsLab(t *testing.T, path string) bool {
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	ast.Inspect(file, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "netlab" && sel.Sel.Name == "New" {
				found = true
			}
		}
		return !found
	})
	return found
}
