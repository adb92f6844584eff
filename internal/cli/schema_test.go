package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/reach-tools/reach/internal/testnet"
)

// The JSON Schema documents in schema/ describe every --json output; these
// tests run the commands and validate what they print, line by line.

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema // by file name, e.g. reach.check.v1.json
	schemasErr  error
)

// schemaFor compiles schema/NAME (draft 2020-12, formats asserted).
func schemaFor(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	schemasOnce.Do(func() {
		files, err := filepath.Glob("../../schema/*.json")
		if err != nil || len(files) == 0 {
			schemasErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		schemas = map[string]*jsonschema.Schema{}
		for _, f := range files {
			s, err := c.Compile(f)
			if err != nil {
				schemasErr = err
				return
			}
			schemas[filepath.Base(f)] = s
		}
	})
	if schemasErr != nil {
		t.Fatalf("compiling schema/: %v", schemasErr)
	}
	s, ok := schemas[name]
	if !ok {
		t.Fatalf("no schema/%s", name)
	}
	return s
}

// validLines checks that out is JSON Lines, n lines (any when n < 0), each
// valid against schema/name; it returns them decoded.
func validLines(t *testing.T, name, out string, n int) []map[string]any {
	t.Helper()
	s := schemaFor(t, name)
	var recs []map[string]any
	for line := range strings.Lines(out) {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, " ") {
			t.Fatalf("%s: not JSON Lines (an empty or indented line):\n%s", name, out)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
		if err != nil {
			t.Fatalf("%s: %v:\n%s", name, err, line)
		}
		if err := s.Validate(v); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, line)
		}
		var rec map[string]any
		json.Unmarshal([]byte(line), &rec)
		recs = append(recs, rec)
	}
	if n >= 0 && len(recs) != n {
		t.Fatalf("%s: %d lines, want %d:\n%s", name, len(recs), n, out)
	}
	return recs
}

// invalid asserts that schema/name refuses rec changed by mutate: the
// schemas must catch a null list and a missing schema field.
func invalid(t *testing.T, name string, rec map[string]any, what string, mutate func(map[string]any)) {
	t.Helper()
	b, _ := json.Marshal(rec)
	var c map[string]any
	json.Unmarshal(b, &c) // a deep copy
	mutate(c)
	b, _ = json.Marshal(c)
	v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err := schemaFor(t, name).Validate(v); err == nil {
		t.Errorf("%s accepts a record with %s:\n%s", name, what, b)
	}
}

func TestCheckJSONSchema(t *testing.T) {
	open := testnet.Serve(t, nil).String()
	closed := testnet.ClosedPort(t).String()
	// .onion names never reach a resolver (RFC 7686; Go's own resolver
	// refuses them): a DNS failure without sending a packet.
	const noName = "no-such-host.onion:80"
	code, out, errs := run(t, "check", open, closed, noName, "--json", "--hold", "0", "--timeout", "2s")
	if code != ExitFail {
		t.Fatalf("exit %d, want 1:\n%s", code, errs)
	}
	recs := validLines(t, "reach.check.v1.json", out, 3)
	if recs[0]["reachable"] != true || recs[1]["class"] != "refused" || recs[2]["class"] != "dns" {
		t.Errorf("reports out of order or wrong:\n%s", out)
	}
	if a, ok := recs[2]["addresses"].([]any); !ok || len(a) != 0 {
		t.Errorf("addresses of a name that does not resolve: %v, want []", recs[2]["addresses"])
	}
	// One target: the same shape, one line.
	_, out, _ = run(t, "check", noName, "--json", "--hold", "0", "--timeout", "2s")
	validLines(t, "reach.check.v1.json", out, 1)

	invalid(t, "reach.check.v1.json", recs[2], "addresses null", func(r map[string]any) { r["addresses"] = nil })
	invalid(t, "reach.check.v1.json", recs[0], "no schema", func(r map[string]any) { delete(r, "schema") })
	invalid(t, "reach.check.v1.json", recs[0], "another schema", func(r map[string]any) { r["schema"] = "reach.check/v2" })
	invalid(t, "reach.check.v1.json", recs[0], "probes null", func(r map[string]any) {
		r["addresses"].([]any)[0].(map[string]any)["probes"] = nil
	})
	invalid(t, "reach.check.v1.json", recs[0], "an unknown field", func(r map[string]any) { r["extra"] = 1 })
}

func TestWaitJSONSchema(t *testing.T) {
	up, down := testnet.Serve(t, testnet.Echo).String(), testnet.ClosedPort(t).String()
	code, out, _ := run(t, "wait", up, "--json", "--timeout", "10s")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	validLines(t, "reach.wait.v1.json", out, 1)
	code, out, _ = run(t, "wait", up, down, "--json", "--timeout", "300ms")
	if code != ExitTimeout {
		t.Fatalf("exit %d, want 124", code)
	}
	rec := validLines(t, "reach.wait.v1.json", out, 1)[0]
	invalid(t, "reach.wait.v1.json", rec, "targets null", func(r map[string]any) { r["targets"] = nil })
	invalid(t, "reach.wait.v1.json", rec, "no schema", func(r map[string]any) { delete(r, "schema") })
}

func TestConnectJSONSchema(t *testing.T) {
	up, down := testnet.Serve(t, testnet.Echo).String(), testnet.ClosedPort(t).String()
	code, out, errs := run(t, "connect", down, up, "-z", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	validLines(t, "reach.connect.v1.json", out, 1)
	code, out, _ = run(t, "connect", down, "-z", "--json", "--retries", "0")
	if code != ExitFail {
		t.Fatalf("exit %d, want 1", code)
	}
	rec := validLines(t, "reach.connect.v1.json", out, 1)[0]
	if _, ok := rec["failed"].([]any); !ok {
		t.Errorf("a failed connect has no failed[]: %v", rec)
	}
	invalid(t, "reach.connect.v1.json", rec, "attempts null", func(r map[string]any) { r["attempts"] = nil })
	invalid(t, "reach.connect.v1.json", rec, "no schema", func(r map[string]any) { delete(r, "schema") })
}

func TestPortsJSONSchema(t *testing.T) {
	ln := testnet.Listen(t)
	port := strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	code, out, errs := run(t, "ports", "--port", port, "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rec := validLines(t, "reach.ports.v1.json", out, 1)[0]
	ln.Close()
	// None matches: exit 1, and still the whole object with [] lists.
	code, out, _ = run(t, "ports", "--port", port, "--json")
	if code != ExitFail {
		t.Fatalf("no socket: exit %d, want 1", code)
	}
	none := validLines(t, "reach.ports.v1.json", out, 1)[0]
	if s, ok := none["sockets"].([]any); !ok || len(s) != 0 {
		t.Errorf("sockets %v, want []", none["sockets"])
	}
	invalid(t, "reach.ports.v1.json", none, "sockets null", func(r map[string]any) { r["sockets"] = nil })
	invalid(t, "reach.ports.v1.json", rec, "warnings null", func(r map[string]any) { r["warnings"] = nil })
	invalid(t, "reach.ports.v1.json", rec, "no schema", func(r map[string]any) { delete(r, "schema") })
}

func TestBaselineDiffJSONSchema(t *testing.T) {
	pre := filepath.Join(t.TempDir(), "pre.json")
	up := testnet.Listen(t)
	down := testnet.ClosedPort(t).String()
	if code, _, errs := run(t, "baseline", "save", up.Addr().String(), down, "-o", pre, "--timeout", "1s"); code != ExitOK {
		t.Fatalf("save: exit %d: %s", code, errs)
	}
	code, out, _ := run(t, "baseline", "diff", pre, "--json")
	if code != ExitOK {
		t.Fatalf("diff: exit %d", code)
	}
	validLines(t, "reach.baseline-diff.v1.json", out, 1)
	up.Close()
	code, out, _ = run(t, "baseline", "diff", pre, "--json")
	if code != ExitFail {
		t.Fatalf("diff, a listener gone: exit %d", code)
	}
	rec := validLines(t, "reach.baseline-diff.v1.json", out, 1)[0]
	if b, _ := rec["broken"].([]any); len(b) != 1 {
		t.Errorf("broken %v, want the closed listener", rec["broken"])
	}
	invalid(t, "reach.baseline-diff.v1.json", rec, "gone null", func(r map[string]any) { r["gone"] = nil })
	invalid(t, "reach.baseline-diff.v1.json", rec, "no schema", func(r map[string]any) { delete(r, "schema") })
}

// Every schema/ file is one a test here validates against, and is named
// after the schema id its const says.
func TestSchemaFilesNamedAfterTheirIDs(t *testing.T) {
	files, _ := filepath.Glob("../../schema/*.json")
	if len(files) < 7 {
		t.Fatalf("%d schema files, want one per --json output", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Schema     string `json:"$schema"`
			Properties struct {
				Schema struct{ Const string } `json:"schema"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := strings.Replace(strings.TrimSuffix(filepath.Base(f), ".json"), ".v", "/v", 1)
		if doc.Properties.Schema.Const != want || doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: schema const %q, $schema %q; want %q and draft 2020-12", f, doc.Properties.Schema.Const, doc.Schema, want)
		}
	}
}
