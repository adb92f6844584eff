package endpoint

import (
	"regexp"
	"strings"
	"testing"
)

// nameRule is the rule ValidName implements, as the regular expression the
// monitor's config used: the oracle of the fuzzer below.
var nameRule = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"db", true}, {"web-1", true}, {"db-1.prod_eu", true}, {"9lives", true},
		{strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), false},
		{"", false}, {"-db", false}, {".db", false}, {"_db", false},
		{"a<b>", false}, {"db 1", false}, {"db/1", false}, {"db:5432", false},
		{"db\n", false}, {"dé", false},
	} {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"db", "web-1", "", "-x", "a\n", strings.Repeat("z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidName(s), nameRule.MatchString(s); got != want {
			t.Fatalf("ValidName(%q) = %v, the rule says %v", s, got, want)
		}
	})
}
