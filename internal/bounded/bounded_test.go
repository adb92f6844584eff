package bounded

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	big := filepath.Join(dir, "big")
	os.WriteFile(small, []byte("0123456789"), 0o600)
	os.WriteFile(big, []byte(strings.Repeat("x", 11)), 0o600)
	tests := []struct {
		path    string
		limit   int64
		want    string
		wantErr string // "" for none
	}{
		{small, 10, "0123456789", ""},
		{small, 100, "0123456789", ""},
		{big, 10, "", "token file " + big + " holds 11 bytes; the limit for a token file is 10 bytes"},
		// A device has no size to check first: it is read up to the limit.
		{"/dev/zero", 4096, "", "token file /dev/zero holds more than 4 KiB; the limit for a token file is 4 KiB: is it the right file?"},
		{filepath.Join(dir, "missing"), 10, "", "no such file"},
	}
	for _, tt := range tests {
		b, err := ReadFile(tt.path, "token file", tt.limit)
		if tt.wantErr == "" {
			if err != nil || string(b) != tt.want {
				t.Errorf("ReadFile(%s, %d) = %q, %v; want %q", tt.path, tt.limit, b, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ReadFile(%s, %d): %v; want an error containing %q", tt.path, tt.limit, err, tt.wantErr)
		}
		var te *TooLargeError
		if tl := strings.Contains(tt.wantErr, "limit"); tl != errors.As(err, &te) || tl != errors.Is(err, ErrTooLarge) {
			t.Errorf("ReadFile(%s): %v: *TooLargeError and ErrTooLarge found: %v, want %v", tt.path, err, errors.As(err, &te), tl)
		}
	}
}

// Read stops at limit+1 bytes of an endless reader and passes read errors on.
func TestRead(t *testing.T) {
	r := &counting{}
	if _, err := Read(r, "standard input", "target list", 1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless input: %v, want ErrTooLarge", err)
	}
	if r.n > 1001 {
		t.Errorf("read %d bytes of an endless input with a limit of 1000", r.n)
	}
	boom := errors.New("boom")
	if _, err := Read(iotest.ErrReader(boom), "x", "y", 10); !errors.Is(err, boom) {
		t.Errorf("read error: %v, want boom", err)
	}
	if b, err := Read(strings.NewReader(""), "x", "y", 0); err != nil || len(b) != 0 {
		t.Errorf("empty input: %q, %v", b, err)
	}
}

type counting struct{ n int }

func (c *counting) Read(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{4 << 20: "4 MiB", 4096: "4 KiB", 100: "100 bytes", 1<<20 + 1: "1.0 MiB", 1025: "1025 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
