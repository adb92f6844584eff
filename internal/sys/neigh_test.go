package sys

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func neighMsg(state uint16, attrs ...[]byte) []byte {
	b := make([]byte, ndmsgLen)
	binary.NativeEndian.PutUint16(b[8:], state)
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func neighAttr(typ uint16, data []byte) []byte {
	a := make([]byte, 4, 4+len(data)+3)
	binary.NativeEndian.PutUint16(a, uint16(4+len(data)))
	binary.NativeEndian.PutUint16(a[2:], typ)
	a = append(a, data...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func TestParseNeigh(t *testing.T) {
	v4 := []byte{198, 18, 1, 7}
	v6 := netip.MustParseAddr("fd00::7").As16()
	mac := []byte{1, 2, 3, 4, 5, 6}
	if a, st, ok := parseNeigh(neighMsg(NeighFailed, neighAttr(2, mac), neighAttr(ndaDst, v4))); !ok || st != NeighFailed || a != netip.MustParseAddr("198.18.1.7") {
		t.Fatalf("v4 = %v %#x %v", a, st, ok)
	}
	if a, st, ok := parseNeigh(neighMsg(NeighIncomplete, neighAttr(ndaDst, v6[:]))); !ok || st != NeighIncomplete || a != netip.MustParseAddr("fd00::7") {
		t.Fatalf("v6 = %v %#x %v", a, st, ok)
	}
	for name, b := range map[string][]byte{
		"short":       make([]byte, 4),
		"no dst":      neighMsg(2, neighAttr(2, mac)),
		"bad length":  append(neighMsg(2), 0xff, 0, 1, 0),
		"zero length": append(neighMsg(2), 0, 0, 1, 0),
		"odd dst":     neighMsg(2, neighAttr(ndaDst, []byte{1, 2, 3})),
	} {
		if _, _, ok := parseNeigh(b); ok {
			t.Errorf("%s: parsed, want rejected", name)
		}
	}
}

func FuzzParseNeigh(f *testing.F) {
	f.Add(neighMsg(NeighFailed, neighAttr(2, []byte{1, 2, 3, 4, 5, 6}), neighAttr(ndaDst, []byte{198, 18, 1, 7})))
	f.Add(append(neighMsg(2), 0xff, 0, 1, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, st, ok := parseNeigh(b)
		if !ok {
			return
		}
		if !a.IsValid() || a.Is4In6() || st != binary.NativeEndian.Uint16(b[8:10]) {
			t.Fatalf("%x: %v %#x", b, a, st)
		}
	})
}
