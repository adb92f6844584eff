package sys

import (
	"strconv"
	"testing"
)

func TestParseNamespaceLink(t *testing.T) {
	tests := []struct {
		in, typ string
		want    uint64
		ok      bool
	}{
		{"net:[4026531840]", "net", 4026531840, true},
		{"net:[1]", "net", 1, true},
		{"mnt:[4026531840]", "net", 0, false},
		{"net:[]", "net", 0, false},
		{"net:[+5]", "net", 0, false},
		{"net:[-5]", "net", 0, false},
		{"net:[12", "net", 0, false},
		{"net:[18446744073709551616]", "net", 0, false}, // 2^64
		{"net:[12]x", "net", 0, false},
		{"socket:[12]", "net", 0, false},
		{"", "net", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseNamespaceLink(tt.in, tt.typ)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseNamespaceLink(%q, %q) = %d, %v; want %d, %v", tt.in, tt.typ, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseNamespaceLink(f *testing.F) {
	f.Add("net:[4026531840]")
	f.Add("net:[")
	f.Fuzz(func(t *testing.T, s string) {
		ino, ok := ParseNamespaceLink(s, "net")
		if !ok && ino != 0 {
			t.Fatalf("%q: inode %d without ok", s, ino)
		}
		if ok {
			if again, ok2 := ParseNamespaceLink(formatLink(ino), "net"); !ok2 || again != ino {
				t.Fatalf("%q: %d does not round-trip", s, ino)
			}
		}
	})
}

func formatLink(ino uint64) string { return "net:[" + strconv.FormatUint(ino, 10) + "]" }
