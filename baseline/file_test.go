package baseline

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/probe"
)

func sampleFile() *File {
	a := entry("198.18.0.2:22", probe.Open, 0.31)
	a.Cause, a.Addr = "reachable", "198.18.0.2:22"
	b := entry("db:5432", probe.Timeout, 0)
	b.Name, b.Cause, b.SourceAddr, b.Interface, b.TimeoutMS = "db", "firewall-drop", "198.18.0.1", "eth0", 500
	c := entry("[fd00::2]:80", probe.Refused, 0)
	c.Cause = "not-listening"
	return &File{Schema: Schema, TakenAt: time.Date(2026, 12, 5, 10, 42, 3, 0, time.UTC), Host: "web-1",
		From: "targets", TimeoutMS: 3000, DurationMS: 12.5, Entries: []Entry{a, b, c}}
}

func TestEncodeParseRoundTrip(t *testing.T) {
	f := sampleFile()
	var b bytes.Buffer
	if err := f.Encode(&b); err != nil {
		t.Fatal(err)
	}
	// One entry per line, so a diff of two files by hand is readable.
	if n := strings.Count(b.String(), `{"source":`); n != 3 {
		t.Errorf("%d entry lines, want 3:\n%s", n, b.String())
	}
	got, err := Parse(b.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(got, f) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, f)
	}
}

func TestParseRefuses(t *testing.T) {
	valid := func() string {
		var b bytes.Buffer
		sampleFile().Encode(&b)
		return b.String()
	}()
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "unexpected end of JSON input"},
		{"not json", "hello", "line 1: invalid character 'h'"},
		{"no schema", `{"entries":[]}`, `no "schema" field (want "reach.baseline/v1")`},
		{"other schema", `{"schema":"reach.baseline/v2"}`, `schema "reach.baseline/v2"; this reach reads "reach.baseline/v1"`},
		{"schema not a string", `{"schema":1}`, "cannot unmarshal number"},
		{"unknown field", strings.Replace(valid, `"host"`, `"hots"`, 1), `unknown field "hots"`},
		{"no entries", strings.Replace(valid[:strings.Index(valid, `"entries"`)]+`"entries": []}`, "", "", 0), "no entries"},
		{"bad class", strings.Replace(valid, `"class":"timeout"`, `"class":"filtered"`, 1), `entries[1]: class "filtered"`},
		{"bad target", strings.Replace(valid, `"target":"db:5432"`, `"target":"db"`, 1), "entries[1]: target:"},
		{"bad source", strings.Replace(valid, `"source":"local"`, `"source":"a b"`, 1), `entries[0]: source "a b"`},
		{"bad cause", strings.Replace(valid, `"firewall-drop"`, `"Firewall Drop"`, 1), `entries[1]: cause "Firewall Drop"`},
		{"negative connect", strings.Replace(valid, `"connect_ms":0.31`, `"connect_ms":-1`, 1), "entries[0]: connect_ms -1"},
		{"huge timeout", strings.Replace(valid, `"timeout_ms": 3000`, `"timeout_ms": 1e300`, 1), "timeout_ms 1e+300"},
		{"bad source addr", strings.Replace(valid, `"198.18.0.1"`, `"198.18.0.999"`, 1), "entries[1]: source_addr"},
		{"duplicate", strings.Replace(valid, `"target":"[fd00::2]:80","class":"refused"`, `"target":"198.18.0.2:22","class":"refused"`, 1),
			"entries[2]: 198.18.0.2:22 is listed twice"},
		{"two values", valid + "{}", "invalid character '{' after top-level value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrFormat with %q", err, tc.want)
			}
		})
	}
}

func TestWriteAtomicAndForce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pre.json")
	f := sampleFile()
	if err := Write(path, f, false); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path); err != nil || !reflect.DeepEqual(got, f) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	other := sampleFile()
	other.Host = "web-2"
	err := Write(path, other, false)
	var fe *FileError
	if !errors.Is(err, ErrExists) || !errors.As(err, &fe) || fe.Path != path || !strings.Contains(err.Error(), "give --force") {
		t.Errorf("overwrite without force: %v", err)
	}
	if got, _ := Read(path); got.Host != "web-1" {
		t.Errorf("the refused write changed the file: host %q", got.Host)
	}
	if err := Write(path, other, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(path); got.Host != "web-2" {
		t.Errorf("forced write: host %q", got.Host)
	}
	// No temporary files are left beside it.
	names, _ := os.ReadDir(dir)
	if len(names) != 1 {
		t.Errorf("files left in %s: %v", dir, names)
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir.json"), f, false); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestReadBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := readLimited("/dev/zero", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("reading /dev/zero: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readLimited(big, 1<<20); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "the limit for a baseline file is 1 MiB") {
		t.Errorf("reading a 2 MiB file with a 1 MiB limit: %v", err)
	}
	_, err := Read(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadTargets(t *testing.T) {
	ts, err := ReadTargets(strings.NewReader("# the fleet\n198.18.0.2:22, 198.18.0.2:80\n\n[fd00::2]:443 db:5432 # db\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range ts {
		if x.Source != LocalSource {
			t.Errorf("source %q", x.Source)
		}
		got = append(got, x.Target)
	}
	if want := []string{"198.18.0.2:22", "198.18.0.2:80", "[fd00::2]:443", "db:5432"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"198.18.0.2:22\n198.18.0.2\n", "line 2:"},
		{"a:1\n" + strings.Repeat("x", 5000) + "\n", "line 2: longer than 4096 bytes"},
	} {
		if _, err := ReadTargets(strings.NewReader(tc.in)); !errors.Is(err, ErrList) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.20q: %v, want %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts encodes and parses
// back to the same file.
func FuzzParse(f *testing.F) {
	var b bytes.Buffer
	sampleFile().Encode(&b)
	f.Add(b.Bytes())
	f.Add([]byte(`{"schema":"reach.baseline/v1","timeout_ms":1,"entries":[{"source":"local","target":"a:1","class":"open","connect_ms":0}]}`))
	f.Add([]byte(`{"schema":"reach.baseline/v1","entries":null}`))
	f.Add([]byte(`{"schema":"reach.baseline/v1","timeout_ms":1,"entries":[{"source":"local","target":"[::1%lo]:1","class":"dns","cause":"dns","connect_ms":1e-9}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not ErrFormat: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := got.Encode(&out); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out.Bytes())
		if err != nil {
			t.Fatalf("re-parse of an accepted file: %v\n%s", err, out.String())
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("round trip differs:\n%+v\n%+v", got, again)
		}
	})
}

// FuzzReadTargets: the list reader never panics, and every target it
// returns parses again as an endpoint.
func FuzzReadTargets(f *testing.F) {
	f.Add("198.18.0.2:22, [fd00::1]:80 # c\nname:443\n")
	f.Add("a:0\n")
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ReadTargets(strings.NewReader(s))
		if err != nil {
			return
		}
		if _, err := ParseTargets(func() []string {
			out := make([]string, len(ts))
			for i, x := range ts {
				out[i] = x.Target
			}
			return out
		}()); err != nil {
			t.Fatalf("a target read does not parse again: %v", err)
		}
	})
}
