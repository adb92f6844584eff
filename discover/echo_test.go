package discover

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// Our echo request is one x/net/icmp parses, with a valid checksum.
func TestEchoRequest(t *testing.T) {
	b := echoRequest(false, 0x1234, 7)
	m, err := icmp.ParseMessage(1, b)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := m.Body.(*icmp.Echo)
	if m.Type != ipv4.ICMPTypeEcho || !ok || e.ID != 0x1234 || e.Seq != 7 {
		t.Fatalf("parsed %+v %+v", m, m.Body)
	}
	if checksum(b) != 0 {
		t.Fatalf("checksum over the message with its checksum is %#x, want 0", checksum(b))
	}
}

func TestParseEchoReply(t *testing.T) {
	reply := func(typ byte, id uint16) []byte {
		b := echoRequest(false, id, 1)
		b[0] = typ
		return b
	}
	ip := func(b []byte) []byte { return append(append([]byte{0x45}, make([]byte, 19)...), b...) }
	tests := []struct {
		name    string
		b       []byte
		v6, hdr bool
		id      uint16
		ok      bool
	}{
		{"v4 reply", reply(echoReply4, 9), false, false, 9, true},
		{"v4 reply behind its IP header", ip(reply(echoReply4, 9)), false, true, 9, true},
		{"v4 request", reply(echoRequest4, 9), false, false, 0, false},
		{"v6 reply", reply(echoReply6, 3), true, false, 3, true},
		{"v6 type in v4", reply(echoReply6, 3), false, false, 0, false},
		{"short", []byte{0, 0, 0}, false, false, 0, false},
		{"header longer than packet", []byte{0x4f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false, true, 0, false},
		{"not IPv4", append([]byte{0x65}, make([]byte, 30)...), false, true, 0, false},
		{"non-zero code", append([]byte{0, 1}, make([]byte, 6)...), false, false, 0, false},
	}
	for _, tt := range tests {
		id, ok := parseEchoReply(tt.b, tt.v6, tt.hdr)
		if ok != tt.ok || id != tt.id {
			t.Errorf("%s: (%d, %v), want (%d, %v)", tt.name, id, ok, tt.id, tt.ok)
		}
	}
}

// Whatever a socket returns, parsing never panics, and an accepted reply
// is at least a whole ICMP header of the right type.
func FuzzParseEchoReply(f *testing.F) {
	f.Add(echoRequest(false, 1, 1), false, false)
	f.Add(append(append([]byte{0x45}, make([]byte, 19)...), 0, 0, 0, 0, 0, 1, 0, 1), false, true)
	f.Add([]byte{129, 0, 0, 0, 0, 2, 0, 1}, true, false)
	f.Fuzz(func(t *testing.T, b []byte, v6, hdr bool) {
		id, ok := parseEchoReply(b, v6, hdr)
		if !ok {
			return
		}
		off := 0
		if hdr {
			off = int(b[0]&0x0f) * 4
		}
		if len(b) < off+8 || binary.BigEndian.Uint16(b[off+4:]) != id {
			t.Fatalf("accepted %x (v6 %v, header %v) as id %d", b, v6, hdr, id)
		}
	})
}
