package doctor

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// Every check of DefaultLadder reads only from checks of earlier stages,
// and no two checks share a name (a check's name says what it owns).
func TestLadderOrder(t *testing.T) {
	before := map[string]bool{}
	for n, stage := range DefaultLadder() {
		for _, c := range stage {
			for _, r := range c.Reads() {
				if !before[r] {
					t.Errorf("stage %d: check %s reads %s, which does not run in an earlier stage", n, c.Name(), r)
				}
			}
		}
		for _, c := range stage {
			if before[c.Name()] {
				t.Errorf("two checks are called %s", c.Name())
			}
			before[c.Name()] = true
		}
	}
}

// Each State field after Options belongs to one check of DefaultLadder,
// the one its comment names: take copies it for that check alone.
func TestStateOwners(t *testing.T) {
	from := &State{}
	v := reflect.ValueOf(from).Elem()
	var fields []string
	for i := 2; i < v.NumField(); i++ { // after Target and Options
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() {
			continue // Run's, not a check's (bg)
		}
		switch f.Kind() {
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int64:
			f.SetInt(1)
		default:
			t.Fatalf("State.%s: fill a %s", v.Type().Field(i).Name, f.Kind())
		}
		fields = append(fields, v.Type().Field(i).Name)
	}
	owner := map[string]string{}
	for _, stage := range DefaultLadder() {
		for _, c := range stage {
			to := &State{}
			to.take(c.Name(), from)
			tv := reflect.ValueOf(to).Elem()
			for i, name := range fields {
				if tv.Field(i + 2).IsZero() {
					continue
				}
				if o, ok := owner[name]; ok {
					t.Errorf("State.%s is taken for %s and for %s", name, o, c.Name())
				}
				owner[name] = c.Name()
			}
		}
	}
	comments := stateComments(t)
	for _, name := range fields {
		o, ok := owner[name]
		if !ok {
			t.Errorf("State.%s belongs to no check of DefaultLadder (take does not copy it)", name)
			continue
		}
		if c := comments[name]; c != o && !strings.HasPrefix(c, o+":") {
			t.Errorf("State.%s belongs to %s, but its comment says %q", name, o, c)
		}
	}
}

// stateComments returns the line comment of each field of State.
func stateComments(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "state.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "State" {
			return true
		}
		for _, fl := range ts.Type.(*ast.StructType).Fields.List {
			for _, id := range fl.Names {
				out[id.Name] = strings.TrimSpace(fl.Comment.Text())
			}
		}
		return false
	})
	return out
}

// A check sees the evidence of the checks it reads and nothing else, and
// what it writes of another check's evidence is not kept.
func TestChecksSeeOnlyWhatTheyRead(t *testing.T) {
	addr := netip.MustParseAddr("198.18.0.2")
	dns := CheckFunc{CheckName: "dns", Fn: func(_ context.Context, s *State) CheckResult {
		s.Addrs, s.LookupOK = []netip.Addr{addr}, true
		s.Probes = [][]probe.Result{{{Class: probe.Open}}} // tcp's: dropped
		return CheckResult{Status: Pass}
	}}
	seen := map[string]string{}
	look := func(name string, reads ...string) Check {
		return CheckFunc{CheckName: name, ReadsFrom: reads, Fn: func(_ context.Context, s *State) CheckResult {
			seen[name] = "addrs " + addrsOf(s) + ", probes " + string(s.Primary(0))
			return CheckResult{Status: Info}
		}}
	}
	Run(context.Background(), endpoint.Endpoint{Host: "db.reach.test", Port: 5432}, Options{
		Ladder: []Stage{{dns}, {look("blind")}, {look("reader", "dns")}, {look("tcp-reader", "dns", "tcp")}},
	})
	for name, want := range map[string]string{
		"blind":      "addrs [], probes ",
		"reader":     "addrs [198.18.0.2], probes ",
		"tcp-reader": "addrs [198.18.0.2], probes ",
	} {
		if seen[name] != want {
			t.Errorf("%s saw %q, want %q", name, seen[name], want)
		}
	}
}

func addrsOf(s *State) string {
	var out []string
	for _, a := range s.Addrs {
		out = append(out, a.String())
	}
	return "[" + strings.Join(out, " ") + "]"
}
