package sys

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
)

func TestParseExtendedErr(t *testing.T) {
	r, v6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("fd00::1")
	mapped := netip.AddrFrom16(r.As16()) // ::ffff:198.18.0.1
	tests := []struct {
		name        string
		b           []byte
		want        ExtendedErr
		unreachable bool
	}{
		{"admin prohibited", extErr(113, OriginICMP, 3, 13, r), ExtendedErr{syscall.EHOSTUNREACH, OriginICMP, 3, 13, r}, true},
		{"v6 address unreachable", extErr(113, OriginICMP6, 1, 3, v6), ExtendedErr{syscall.EHOSTUNREACH, OriginICMP6, 1, 3, v6}, true},
		{"mapped offender", extErr(111, OriginICMP6, 1, 4, mapped), ExtendedErr{syscall.ECONNREFUSED, OriginICMP6, 1, 4, r}, true},
		{"time exceeded", extErr(113, OriginICMP, 11, 0, r), ExtendedErr{syscall.EHOSTUNREACH, OriginICMP, 11, 0, r}, false},
		{"v6 time exceeded", extErr(113, OriginICMP6, 3, 0, v6), ExtendedErr{syscall.EHOSTUNREACH, OriginICMP6, 3, 0, v6}, false},
		{"local", extErr(90, OriginLocal, 0, 0, r), ExtendedErr{syscall.EMSGSIZE, OriginLocal, 0, 0, r}, false},
		{"no offender", extErr(113, OriginICMP, 3, 1, r)[:16], ExtendedErr{syscall.EHOSTUNREACH, OriginICMP, 3, 1, netip.Addr{}}, true},
		{"offender cut short", extErr(113, OriginICMP, 3, 1, r)[:19], ExtendedErr{syscall.EHOSTUNREACH, OriginICMP, 3, 1, netip.Addr{}}, true},
		{"v6 offender cut short", extErr(113, OriginICMP6, 1, 3, v6)[:16+20], ExtendedErr{syscall.EHOSTUNREACH, OriginICMP6, 1, 3, netip.Addr{}}, true},
	}
	for _, tt := range tests {
		e, err := ParseExtendedErr(tt.b)
		if err != nil || e != tt.want || e.Unreachable() != tt.unreachable {
			t.Errorf("%s: %+v, %v (unreachable %v); want %+v (unreachable %v)", tt.name, e, err, e.Unreachable(), tt.want, tt.unreachable)
		}
	}
	if _, err := ParseExtendedErr(make([]byte, 15)); err == nil {
		t.Error("15 bytes accepted")
	}
}

func FuzzParseExtendedErr(f *testing.F) {
	f.Add(extErr(113, OriginICMP, 3, 13, netip.MustParseAddr("198.18.0.1")))
	f.Add(extErr(111, OriginICMP6, 1, 4, netip.MustParseAddr("fd00::1")))
	f.Add(make([]byte, 18))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseExtendedErr(b)
		if (err != nil) != (len(b) < 16) {
			t.Fatalf("%x: error %v", b, err)
		}
		if err != nil {
			return
		}
		if e.Errno != syscall.Errno(binary.NativeEndian.Uint32(b)) || e.Origin != b[4] || e.Type != b[5] || e.Code != b[6] {
			t.Fatalf("%x: header decoded as %+v", b, e)
		}
		if e.Offender.IsValid() && (e.Offender.Is4In6() || e.Offender.Zone() != "") {
			t.Fatalf("%x: offender %v", b, e.Offender)
		}
	})
}
