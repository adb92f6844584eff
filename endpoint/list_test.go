package endpoint

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// repeat yields s over and over, up to n bytes (n < 0: forever), counting
// what it gave.
type repeat struct {
	s    string
	n    int64
	read int64
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n >= 0 && r.read >= r.n {
		return 0, io.EOF
	}
	if r.n >= 0 {
		p = p[:min(int64(len(p)), r.n-r.read)]
	}
	for i := range p {
		p[i] = r.s[(r.read+int64(i))%int64(len(r.s))]
	}
	r.read += int64(len(p))
	return len(p), nil
}

func TestReadHostList(t *testing.T) {
	got, err := ReadHostList(strings.NewReader("198.18.0.1,198.18.0.2 db # a comment\n\n  fd00::/126\r\n# c\n198.18.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	var strs []string
	for _, h := range got {
		strs = append(strs, h.String())
	}
	if want := []string{"198.18.0.1", "198.18.0.2", "db", "fd00::/126", "198.18.1.0/24"}; !slices.Equal(strs, want) {
		t.Fatalf("ReadHostList = %q, want %q", strs, want)
	}
	if _, err := ReadHostList(strings.NewReader("198.18.0.1\n# c\nbad host!\n")); !errors.Is(err, ErrBadHost) ||
		!strings.HasPrefix(err.Error(), "line 3: ") {
		t.Errorf("bad line 3: %v, want ErrBadHost prefixed with its line", err)
	}
}

// TestHostileReadHostList feeds endless and oversized lists: each ends in
// ErrListTooLong naming the limit, having read no more than the limits
// allow, and quickly.
func TestHostileReadHostList(t *testing.T) {
	tests := []struct {
		name     string
		in       *repeat
		want     string
		maxBytes int64
	}{
		{"dev zero", &repeat{s: "\x00", n: -1}, "line 1 is longer than 4096 bytes", MaxListLine + 4096},
		{"one endless line", &repeat{s: "198.18.0.1 ", n: -1}, "line 1 is longer than 4096 bytes", MaxListLine + 4096},
		{"endless blank lines", &repeat{s: "\n", n: -1}, "more than 4194304 lines", MaxListLines + 4096},
		{"too many targets", &repeat{s: "198.18.0.1\n", n: 11 * (MaxListTargets + 1)}, "line 1048577: more than 1048576 targets", 11*(MaxListTargets+1) + 4096},
		{"too many bytes", &repeat{s: "#" + strings.Repeat("x", 4000) + "\n", n: -1}, "more than 64 MiB in all", MaxListBytes + 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := ReadHostList(tt.in)
			if !errors.Is(err, ErrListTooLong) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrListTooLong with %q", err, tt.want)
			}
			if tt.in.read > tt.maxBytes {
				t.Errorf("read %d bytes, want at most %d", tt.in.read, tt.maxBytes)
			}
			t.Logf("%v after %d bytes in %v", err, tt.in.read, time.Since(start).Round(time.Millisecond))
		})
	}
	// A line at the limit exactly is read.
	line := strings.Repeat("1", MaxListLine-len("198.18.0.1 #")) // a line of exactly MaxListLine bytes
	if got, err := ReadHostList(strings.NewReader("198.18.0.1 #" + line + "\n")); err != nil || len(got) != 1 {
		t.Errorf("a line of MaxListLine bytes: %v, %v", got, err)
	}
}

// FuzzReadHostList: reading a list finds what parsing it whole finds.
func FuzzReadHostList(f *testing.F) {
	for _, s := range []string{"198.18.0.1,db\n# c\nfd00::/126\r\n", "\n\n", "bad host!\n", "198.18.0.1-20 x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > MaxListLine || strings.Count(s, "\n") > 100 || strings.Contains(s, "\r") {
			return // ScanLines and strings.Lines split carriage returns differently
		}
		got, err := ReadHostList(strings.NewReader(s))
		want, werr := ParseHostList(s)
		if (err == nil) != (werr == nil) {
			t.Fatalf("ReadHostList(%q) err %v; ParseHostList err %v", s, err, werr)
		}
		if err == nil && !slices.Equal(got, want) {
			t.Fatalf("ReadHostList(%q) = %v, ParseHostList = %v", s, got, want)
		}
	})
}
