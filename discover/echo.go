package discover

import "encoding/binary"

// ICMP echo types.
const (
	echoRequest4 = 8
	echoReply4   = 0
	echoRequest6 = 128
	echoReply6   = 129
)

// echoPayload marks reach's echo requests.
var echoPayload = []byte("reach discover")

// echoRequest builds an ICMP echo request. The checksum of ICMPv4 is ours
// to fill; the kernel fills ICMPv6's (and a ping socket's ID).
func echoRequest(v6 bool, id, seq uint16) []byte {
	b := make([]byte, 8+len(echoPayload))
	b[0] = echoRequest4
	if v6 {
		b[0] = echoRequest6
	}
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], seq)
	copy(b[8:], echoPayload)
	if !v6 {
		binary.BigEndian.PutUint16(b[2:4], checksum(b))
	}
	return b
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// parseEchoReply reads an ICMP echo reply as a socket returns it (Go's raw
// IPv4 sockets strip the IP header) and returns its identifier.
func parseEchoReply(b []byte, v6 bool) (id uint16, ok bool) {
	if len(b) < 8 {
		return 0, false
	}
	want := byte(echoReply4)
	if v6 {
		want = echoReply6
	}
	if b[0] != want || b[1] != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[4:6]), true
}
