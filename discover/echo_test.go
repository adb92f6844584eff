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
	tests := []struct {
		name string
		b    []byte
		v6   bool
		id   uint16
		ok   bool
	}{
		{"v4 reply", reply(echoReply4, 9), false, 9, true},
		{"v4 request", reply(echoRequest4, 9), false, 0, false},
		{"v6 reply", reply(echoReply6, 3), true, 3, true},
		{"v6 type in v4", reply(echoReply6, 3), false, 0, false},
		{"v4 type in v6", reply(echoReply4, 3), true, 0, false},
		{"short", []byte{0, 0, 0, 0, 0, 0, 0}, false, 0, false},
		{"non-zero code", append([]byte{0, 1}, make([]byte, 6)...), false, 0, false},
	}
	for _, tt := range tests {
		id, ok := parseEchoReply(tt.b, tt.v6)
		if ok != tt.ok || id != tt.id {
			t.Errorf("%s: (%d, %v), want (%d, %v)", tt.name, id, ok, tt.id, tt.ok)
		}
	}
}

// Whatever a socket returns, parsing never panics, and an accepted reply
// is at least a whole ICMP header of an echo reply's type.
func FuzzParseEchoReply(f *testing.F) {
	f.Add(echoRequest(false, 1, 1), false)
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 1}, false)
	f.Add([]byte{129, 0, 0, 0, 0, 2, 0, 1}, true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		id, ok := parseEchoReply(b, v6)
		if !ok {
			return
		}
		if len(b) < 8 || binary.BigEndian.Uint16(b[4:]) != id || (b[0] != echoReply4 && b[0] != echoReply6) {
			t.Fatalf("accepted %x (v6 %v) as id %d", b, v6, id)
		}
	})
}
