package sys

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func extErr(errno uint32, origin, typ, code uint8, from netip.Addr) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b[0:4], errno)
	b[4], b[5], b[6] = origin, typ, code
	if from.Is4() {
		sa := make([]byte, 16)
		binary.NativeEndian.PutUint16(sa[0:2], 2)
		a := from.As4()
		copy(sa[4:8], a[:])
		return append(b, sa...)
	}
	sa := make([]byte, 28)
	binary.NativeEndian.PutUint16(sa[0:2], 10)
	a := from.As16()
	copy(sa[8:24], a[:])
	return append(b, sa...)
}

func TestParseHop(t *testing.T) {
	r := netip.MustParseAddr("198.18.0.1")
	v6 := netip.MustParseAddr("fd00::1")
	tests := []struct {
		b       []byte
		what    string
		reached bool
		from    netip.Addr
	}{
		{extErr(113, OriginICMP, 11, 0, r), "time exceeded", false, r},
		{extErr(111, OriginICMP, 3, 3, r), "port unreachable", true, r},
		{extErr(113, OriginICMP, 3, 13, r), "administratively prohibited", false, r},
		{extErr(111, OriginICMP6, 1, 4, v6), "port unreachable", true, v6},
		{extErr(113, OriginICMP6, 3, 0, v6), "time exceeded", false, v6},
	}
	for _, tt := range tests {
		h, err := parseHop(tt.b)
		if err != nil || h.What != tt.what || h.Reached != tt.reached || h.From != tt.from {
			t.Errorf("got %+v, %v; want %q reached=%v from %v", h, err, tt.what, tt.reached, tt.from)
		}
	}
	if _, err := parseHop(make([]byte, 10)); err == nil {
		t.Error("short message accepted")
	}
	if _, err := parseHop(extErr(0, 9, 0, 0, r)); err == nil {
		t.Error("unknown origin accepted")
	}
}

func FuzzParseHop(f *testing.F) {
	f.Add(extErr(113, OriginICMP, 11, 0, netip.MustParseAddr("198.18.0.1")))
	f.Add(extErr(111, OriginICMP6, 1, 4, netip.MustParseAddr("fd00::1")))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHop(b)
		if err == nil && h.What == "" {
			t.Errorf("parsed %x without saying what it was", b)
		}
	})
}
