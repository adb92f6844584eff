package endpoint

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseHosts(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		in          string
		name        string
		first, last string
		n           uint64
		str         string
		wantErr     error
		msg         string
	}{
		{in: "198.18.0.7", first: "198.18.0.7", last: "198.18.0.7", n: 1, str: "198.18.0.7"},
		{in: " db.internal ", name: "db.internal", n: 1, str: "db.internal"},
		{in: "db-1", name: "db-1", n: 1, str: "db-1"},
		{in: "198.18.0.0/24", first: "198.18.0.0", last: "198.18.0.255", n: 256, str: "198.18.0.0/24"},
		{in: "198.18.0.77/30", first: "198.18.0.76", last: "198.18.0.79", n: 4, str: "198.18.0.76/30"},
		{in: "198.18.0.1-20", first: "198.18.0.1", last: "198.18.0.20", n: 20, str: "198.18.0.1-198.18.0.20"},
		{in: "198.18.0.250-198.18.1.3", first: "198.18.0.250", last: "198.18.1.3", n: 10},
		{in: "198.18.0.5-5", first: "198.18.0.5", last: "198.18.0.5", n: 1, str: "198.18.0.5"},
		{in: "::1", first: "::1", last: "::1", n: 1},
		{in: "fd00::/120", first: "fd00::", last: "fd00::ff", n: 256, str: "fd00::/120"},
		{in: "fd00::1-fd00::ff", first: "fd00::1", last: "fd00::ff", n: 255},
		{in: "fd00::/64", first: "fd00::", last: "fd00::ffff:ffff:ffff:ffff", n: 1<<64 - 1},
		{in: "fd00::/8", first: "fd00::", last: "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", n: 1<<64 - 1},
		{in: "fe80::1%eth0", first: "fe80::1%eth0", last: "fe80::1%eth0", n: 1},
		{in: "fe80::1%br-lan", first: "fe80::1%br-lan", last: "fe80::1%br-lan", n: 1},
		{in: "::ffff:198.18.0.1", first: "198.18.0.1", last: "198.18.0.1", n: 1},
		{in: "[::1]", first: "::1", last: "::1", n: 1, str: "::1"},
		{in: "[fe80::1%eth0]", first: "fe80::1%eth0", last: "fe80::1%eth0", n: 1},
		{in: "0.0.0.0/0", first: "0.0.0.0", last: "255.255.255.255", n: 1 << 32},

		{in: "", wantErr: ErrSyntax},
		{in: "198.18.0.20-1", wantErr: ErrSyntax, msg: `"198.18.0.20-1": range runs backwards (198.18.0.20 > 198.18.0.1)`},
		{in: "198.18.0.1-256", wantErr: ErrSyntax},
		{in: "198.18.0.1-01", wantErr: ErrSyntax},
		{in: "198.18.0.1-", wantErr: ErrSyntax},
		{in: "198.18.0.1-fd00::1", wantErr: ErrSyntax, msg: `"198.18.0.1-fd00::1": range mixes IPv4 and IPv6`},
		{in: "fd00::1-5", wantErr: ErrSyntax},
		{in: "198.18.0.0/33", wantErr: ErrSyntax},
		{in: "198.18.0.0/", wantErr: ErrSyntax},
		{in: "198.18.0.0/+8", wantErr: ErrSyntax},
		{in: "db/24", wantErr: ErrBadHost},
		{in: "::ffff:0:0/96", wantErr: ErrSyntax},
		{in: "198.18.0.256", wantErr: ErrBadHost},
		{in: "198.18.0.1:80", wantErr: ErrSyntax, msg: `"198.18.0.1:80": a scan target has no port; give ports with -p`},
		{in: "db:22", wantErr: ErrSyntax},
		{in: "fd00:::1", wantErr: ErrBadHost},
		{in: "http://db", wantErr: ErrSyntax},
		{in: "d b", wantErr: ErrBadHost},
		{in: "-db", wantErr: ErrBadHost},
		{in: "fe80::1%eth0-fe80::2", wantErr: ErrSyntax},
		{in: "[198.18.0.1]", wantErr: ErrBadHost},
		{in: "[::1]:80", wantErr: ErrSyntax, msg: `"[::1]:80": a scan target has no port; give ports with -p`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHosts(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseHosts(%q) = %+v, %v; want error %v", tt.in, got, err, tt.wantErr)
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Input != tt.in {
					t.Fatalf("error %v is not a *ParseError for %q", err, tt.in)
				}
				if tt.msg != "" && err.Error() != tt.msg {
					t.Fatalf("message = %q, want %q", err.Error(), tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHosts(%q): %v", tt.in, err)
			}
			if got.Name != tt.name {
				t.Errorf("Name = %q, want %q", got.Name, tt.name)
			}
			if tt.first != "" && (got.First != a(tt.first) || got.Last != a(tt.last)) {
				t.Errorf("range = %v-%v, want %s-%s", got.First, got.Last, tt.first, tt.last)
			}
			if got.Len() != tt.n {
				t.Errorf("Len = %d, want %d", got.Len(), tt.n)
			}
			if tt.str != "" && got.String() != tt.str {
				t.Errorf("String = %q, want %q", got.String(), tt.str)
			}
		})
	}
}

func TestHostsAllAndContains(t *testing.T) {
	h, err := ParseHosts("198.18.0.254-198.18.1.1")
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Collect(h.All())
	want := []netip.Addr{
		netip.MustParseAddr("198.18.0.254"), netip.MustParseAddr("198.18.0.255"),
		netip.MustParseAddr("198.18.1.0"), netip.MustParseAddr("198.18.1.1"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("All = %v, want %v", got, want)
	}
	for _, c := range []struct {
		a  string
		in bool
	}{{"198.18.0.254", true}, {"198.18.1.1", true}, {"198.18.0.253", false}, {"198.18.1.2", false}, {"::ffff:198.18.1.0", true}, {"fd00::1", false}} {
		if h.Contains(netip.MustParseAddr(c.a)) != c.in {
			t.Errorf("Contains(%s) = %v, want %v", c.a, !c.in, c.in)
		}
	}
	top, _ := ParseHosts("255.255.255.254/31")
	if n := len(slices.Collect(top.All())); n != 2 {
		t.Fatalf("All over the top of the address space yielded %d addresses, want 2", n)
	}
}

func TestParseHostList(t *testing.T) {
	got, err := ParseHostList("198.18.0.1,198.18.0.2 db # a comment, not-a-target\n\n  fd00::/126\r\n# only a comment\n")
	if err != nil {
		t.Fatal(err)
	}
	var strs []string
	for _, h := range got {
		strs = append(strs, h.String())
	}
	if want := []string{"198.18.0.1", "198.18.0.2", "db", "fd00::/126"}; !slices.Equal(strs, want) {
		t.Fatalf("ParseHostList = %q, want %q", strs, want)
	}
	if _, err := ParseHostList("198.18.0.1, 198.18.0.300"); !errors.Is(err, ErrBadHost) {
		t.Fatalf("bad item: err = %v, want ErrBadHost", err)
	}
	// In a file, an error names its line.
	if _, err := ParseHostList("198.18.0.1\n# c\nbad host!\n"); !errors.Is(err, ErrBadHost) || !strings.HasPrefix(err.Error(), "line 3: ") {
		t.Errorf("bad line 3: %v, want ErrBadHost prefixed with its line", err)
	}
	if _, err := ParseHostList("198.18.0.300\n"); err == nil || strings.HasPrefix(err.Error(), "line") {
		t.Errorf("one line: %v, want an error without a line number", err)
	}
	if got, err := ParseHostList(" , \n#x\n"); err != nil || len(got) != 0 {
		t.Fatalf("empty list = %v, %v; want nothing", got, err)
	}
}

// FuzzParseHosts checks that every accepted target is a sane range that
// renders back to itself, and every rejection is a typed *ParseError.
func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{"198.18.0.1-20", "198.18.0.0/24", "fd00::1-fd00::ff", "db", "fe80::1%eth0", "1.2.3.4-1.2.3.3", "::ffff:1.2.3.4/120", "a-b", "[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHosts(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != s {
				t.Fatalf("ParseHosts(%q) error %v is not a *ParseError for the input", s, err)
			}
			return
		}
		if h.IsName() {
			if h.First.IsValid() || h.Last.IsValid() {
				t.Fatalf("name %q also has a range", s)
			}
		} else {
			if !h.First.IsValid() || h.Last.Less(h.First) || h.First.BitLen() != h.Last.BitLen() {
				t.Fatalf("ParseHosts(%q) = bad range %v-%v", s, h.First, h.Last)
			}
			if !h.Contains(h.First) || !h.Contains(h.Last) || h.Len() == 0 {
				t.Fatalf("ParseHosts(%q): range %v-%v does not contain its ends", s, h.First, h.Last)
			}
		}
		back, err := ParseHosts(h.String())
		if err != nil || back.Name != h.Name || back.First != h.First || back.Last != h.Last {
			t.Fatalf("ParseHosts(%q) = %q, which parses back as %+v, %v", s, h.String(), back, err)
		}
	})
}
