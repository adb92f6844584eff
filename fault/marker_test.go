package fault

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMarkerRoundTrip(t *testing.T) {
	for _, m := range []Marker{
		{ID: "0a0b0c0d", Mode: Refuse, Port: 1, Expires: time.Unix(1796489664, 0), Owner: Owner{1, 0}},
		{ID: "ffffffff", Mode: RejectICMP, Port: 65535, Expires: time.Unix(1<<40, 0), Owner: Owner{4194304, 18446744073709551615}, Probability: 0.0001},
		{ID: "12345678", Mode: Drop, Port: 8080, Expires: time.Unix(1796489664, 0), Owner: Owner{42, 7}, Probability: 0.5},
	} {
		s := m.String()
		if len(s) > 128 {
			t.Errorf("%q: %d bytes; nft keeps 128", s, len(s))
		}
		got, err := ParseMarker(s)
		if err != nil || got != m {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %+v", s, got, err, m)
		}
	}
}

func TestParseMarkerErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for ErrNotMarker
	}{
		{"", ""},
		{"someone else's rule", ""},
		{"reach-fault/2 0a0b0c0d refuse port=1 exp=1 own=1.1", ""},
		{"reach-fault/1 jump", "too few fields"},
		{"reach-fault/1 0A0B0C0D refuse port=1 exp=1 own=1.1", "bad id"},
		{"reach-fault/1 0a0b0c0d stall port=1 exp=1 own=1.1", "unknown mode"},
		{"reach-fault/1 0a0b0c0d refuse port=0 exp=1 own=1.1", "bad port"},
		{"reach-fault/1 0a0b0c0d refuse port=65536 exp=1 own=1.1", "bad port"},
		{"reach-fault/1 0a0b0c0d refuse port=1 exp=-1 own=1.1", "bad expiry"},
		{"reach-fault/1 0a0b0c0d refuse port=1 exp=1 own=1", "bad owner"},
		{"reach-fault/1 0a0b0c0d refuse port=1 exp=1 own=1.1 p=1", "bad probability"},
		{"reach-fault/1 0a0b0c0d refuse port=1 exp=1 own=1.1 p=NaN", "bad probability"},
		{"reach-fault/1 0a0b0c0d refuse port=1 port=2 exp=1 own=1.1", "bad field"},
		{"reach-fault/1 0a0b0c0d refuse port=1 exp=1 own=1.1 x=1", "unknown field"},
		{"reach-fault/1 0a0b0c0d refuse port=1 exp=1 p=0.5 q", "bad field"},
		{"reach-fault/1 0a0b0c0d refuse port=1 exp=1 p=0.5 src=1", "unknown field"},
		{"reach-fault/1 0a0b0c0d refuse exp=1 own=1.1 p=0.5", "required"},
	} {
		_, err := ParseMarker(tc.in)
		var me *MarkerError
		switch {
		case tc.want == "" && !errors.Is(err, ErrNotMarker):
			t.Errorf("ParseMarker(%q) = %v; want ErrNotMarker", tc.in, err)
		case tc.want != "" && (!errors.As(err, &me) || !strings.Contains(me.Why, tc.want)):
			t.Errorf("ParseMarker(%q) = %v; want a MarkerError saying %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParseMarker: whatever a comment holds, a marker that parses renders
// back to a comment that parses to the same marker.
func FuzzParseMarker(f *testing.F) {
	f.Add("reach-fault/1 9b0dbcde refuse port=7000 exp=1796489664 own=20671.1221068")
	f.Add("reach-fault/1 0a0b0c0d reject-icmp port=7001 exp=1796489000 own=1.2 p=0.25")
	f.Add("reach-fault/1 jump")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMarker(s)
		if err != nil {
			return
		}
		again, err := ParseMarker(m.String())
		if err != nil || again != m {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, m, m.String(), again, err)
		}
	})
}
