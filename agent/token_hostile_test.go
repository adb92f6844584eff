package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Issue 11, row 13: a 1-character token file was accepted.
func TestHostileShortTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	for _, tc := range []struct {
		body string
		n    int // the length reported; -1: accepted
	}{
		{"x\n", 1},
		{"  0123456789abcde \n", 15}, // white space is not token
		{"0123456789abcdef\n", -1},
	} {
		if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := ReadToken(path)
		var se *ShortTokenError
		switch {
		case tc.n < 0 && err != nil:
			t.Errorf("%q refused: %v", tc.body, err)
		case tc.n >= 0 && (!errors.Is(err, ErrShortToken) || !errors.As(err, &se) || se.Len != tc.n || tok != ""):
			t.Errorf("%q: token %q, error %v; want a ShortTokenError of %d bytes", tc.body, tok, err, tc.n)
		}
	}
}
