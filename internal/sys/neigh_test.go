package sys

import (
	"encoding/binary"
	"net/netip"
	"syscall"
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

// A request for one entry carries the family, the interface and NDA_DST;
// the reply is the entry's state, "none" for ENOENT, or the error.
func TestNeighRequestAndReply(t *testing.T) {
	b := neighRequest(netip.MustParseAddr("198.18.0.9"), 7, 42)
	msgs, err := ParseNetlink(b)
	if err != nil || len(msgs) != 1 || msgs[0].Seq != 42 || msgs[0].Type != 30 {
		t.Fatalf("request %x: %+v, %v", b, msgs, err)
	}
	if a, _, ok := parseNeigh(msgs[0].Data); !ok || a != netip.MustParseAddr("198.18.0.9") || msgs[0].Data[0] != 2 ||
		binary.NativeEndian.Uint32(msgs[0].Data[4:8]) != 7 {
		t.Fatalf("request payload %x", msgs[0].Data)
	}
	frame := func(typ uint16, seq uint32, payload []byte) []byte {
		h := make([]byte, nlmsgHdrLen)
		binary.NativeEndian.PutUint32(h[0:4], uint32(nlmsgHdrLen+len(payload)))
		binary.NativeEndian.PutUint16(h[4:6], typ)
		binary.NativeEndian.PutUint32(h[8:12], seq)
		return append(h, payload...)
	}
	entry := append([]byte(nil), msgs[0].Data...)
	binary.NativeEndian.PutUint16(entry[8:10], NeighIncomplete)
	errMsg := func(errno int32) []byte {
		return binary.NativeEndian.AppendUint32(make([]byte, 0, 20), uint32(-errno))
	}
	tests := []struct {
		name               string
		b                  []byte
		state              uint16
		ok, answered, fail bool
	}{
		{"entry", frame(28, 42, entry), NeighIncomplete, true, true, false},
		{"none", frame(nlmsgError, 42, append(errMsg(int32(syscall.ENOENT)), make([]byte, 16)...)), 0, false, true, false},
		{"error", frame(nlmsgError, 42, append(errMsg(int32(syscall.EINVAL)), make([]byte, 16)...)), 0, false, true, true},
		{"someone else's", frame(28, 41, entry), 0, false, false, false},
		{"truncated entry", frame(28, 42, entry[:8]), 0, false, true, true},
	}
	for _, tt := range tests {
		st, ok, answered, err := parseNeighReply(tt.b, 42)
		if st != tt.state || ok != tt.ok || answered != tt.answered || (err != nil) != tt.fail {
			t.Errorf("%s: (%#x, %v, %v, %v)", tt.name, st, ok, answered, err)
		}
	}
}

func FuzzParseNeighReply(f *testing.F) {
	f.Add(neighRequest(netip.MustParseAddr("fd00::9"), 3, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, ok, answered, err := parseNeighReply(b, 1)
		if (ok || st != 0) && (!answered || err != nil) {
			t.Fatalf("state %#x ok %v without an answer (answered %v, err %v)", st, ok, answered, err)
		}
	})
}
