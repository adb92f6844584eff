package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestCheckHelpListsEveryCause: reach check --help lists every cause id
// the doctor declares (doctor/report.go's Cause constants), so a new one
// is taught where people look for it.
func TestCheckHelpListsEveryCause(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../doctor/report.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var causes []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Cause" {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if c, err := strconv.Unquote(lit.Value); err == nil && c != "unknown" {
				causes = append(causes, c)
			}
		}
		return true
	})
	if len(causes) < 20 {
		t.Fatalf("found %d cause ids in doctor/report.go (%v): the parse is wrong", len(causes), causes)
	}
	_, out, _ := run(t, "check", "--help")
	const head = "stable cause id:\n\n"
	i := strings.Index(out, head)
	if i < 0 {
		t.Fatalf("reach check --help has no %q:\n%s", head, out)
	}
	block, _, _ := strings.Cut(out[i+len(head):], "\n\n")
	listed := map[string]bool{}
	for _, id := range strings.FieldsFunc(block, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		listed[id] = true
	}
	for _, c := range causes {
		if !listed[c] {
			t.Errorf("reach check --help does not list cause %s among its ids:\n%s", c, block)
		}
	}
}
