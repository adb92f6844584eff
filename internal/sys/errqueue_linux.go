package sys

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrQueue reads the errors Linux queues on a socket with IP_RECVERR, as
// the sockets NewTCPSocket makes ask it to. It keeps its buffers between
// calls, so each goroutine needs its own.
type ErrQueue struct {
	data [512]byte
	oob  [512]byte
}

// errQueues keeps the buffers of single reads (a probe's), which would
// otherwise cost a kilobyte each.
var errQueues = sync.Pool{New: func() any { return new(ErrQueue) }}

// Unreachable drains fd's error queue (at most 16 errors) and returns the
// latest ICMP destination-unreachable in it about a TCP connection to port.
// A socket connected again may still hold an error about the port it was
// connected to before; the TCP header the error quotes tells them apart.
func (q *ErrQueue) Unreachable(fd int, port uint16) (ExtendedErr, bool) {
	var last ExtendedErr
	found := false
	for range 16 {
		n, oobn, _, _, err := unix.Recvmsg(fd, q.data[:], q.oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			break
		}
		if n >= 4 && binary.BigEndian.Uint16(q.data[2:4]) != port {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(q.oob[:oobn])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if (m.Header.Level != unix.SOL_IP || m.Header.Type != unix.IP_RECVERR) &&
				(m.Header.Level != unix.SOL_IPV6 || m.Header.Type != unix.IPV6_RECVERR) {
				continue
			}
			if e, err := ParseExtendedErr(m.Data); err == nil && e.Unreachable() {
				last, found = e, true
			}
		}
	}
	return last, found
}
