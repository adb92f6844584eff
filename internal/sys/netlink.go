package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// Netlink message types and flags shared by every netlink family
// (linux/netlink.h); kept here so the parser builds on every OS.
const (
	nlmsgError = 0x2
	nlmsgDone  = 0x3

	nlmFRequest  = 0x1
	nlmFDump     = 0x300
	nlmFDumpIntr = 0x10

	nlmsgHdrLen = 16
)

// NetlinkMessage is one message of a netlink reply, header decoded.
type NetlinkMessage struct {
	Type  uint16
	Flags uint16
	Seq   uint32
	PID   uint32
	Data  []byte // payload after the header, without trailing padding
}

// ErrNetlinkTruncated means a netlink buffer ends inside a message.
var ErrNetlinkTruncated = errors.New("sys: truncated netlink message")

// ErrNetlinkInterrupted means the kernel's dump changed while it was being
// read (NLM_F_DUMP_INTR); the caller may retry.
var ErrNetlinkInterrupted = errors.New("sys: netlink dump interrupted, results inconsistent")

// ParseNetlink splits a buffer received from a netlink socket into messages.
// Data slices alias b.
func ParseNetlink(b []byte) ([]NetlinkMessage, error) {
	var msgs []NetlinkMessage
	for len(b) >= nlmsgHdrLen {
		n := binary.NativeEndian.Uint32(b[0:4])
		if n < nlmsgHdrLen || uint64(n) > uint64(len(b)) {
			return msgs, fmt.Errorf("%w: length %d, %d bytes left", ErrNetlinkTruncated, n, len(b))
		}
		msgs = append(msgs, NetlinkMessage{
			Type:  binary.NativeEndian.Uint16(b[4:6]),
			Flags: binary.NativeEndian.Uint16(b[6:8]),
			Seq:   binary.NativeEndian.Uint32(b[8:12]),
			PID:   binary.NativeEndian.Uint32(b[12:16]),
			Data:  b[nlmsgHdrLen:n],
		})
		aligned := (uint64(n) + 3) &^ 3
		if aligned > uint64(len(b)) {
			aligned = uint64(len(b))
		}
		b = b[aligned:]
	}
	if len(b) != 0 {
		return msgs, fmt.Errorf("%w: %d trailing bytes", ErrNetlinkTruncated, len(b))
	}
	return msgs, nil
}

// netlinkError decodes the payload of an NLMSG_ERROR message: a negative
// errno (0 is an acknowledgement) followed by the offending request.
func netlinkError(data []byte) error {
	if len(data) < 4 {
		return fmt.Errorf("%w: short error message", ErrNetlinkTruncated)
	}
	code := int32(binary.NativeEndian.Uint32(data[:4]))
	if code == 0 {
		return nil
	}
	return syscall.Errno(-code)
}

// netlinkRequest frames payload as one dump request of the given type.
func netlinkRequest(typ uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(payload))
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(payload)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], nlmFRequest|nlmFDump)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	return append(b, payload...)
}

// handleDumpPart processes one received buffer of a dump reply: it calls fn
// for each data message and reports whether the dump is complete.
func handleDumpPart(b []byte, seq uint32, fn func(NetlinkMessage) error) (done bool, err error) {
	msgs, err := ParseNetlink(b)
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if m.Seq != seq {
			continue // a reply to someone else's request on a shared port id
		}
		if m.Flags&nlmFDumpIntr != 0 {
			return false, ErrNetlinkInterrupted
		}
		switch m.Type {
		case nlmsgDone:
			return true, nil
		case nlmsgError:
			if err := netlinkError(m.Data); err != nil {
				return false, fmt.Errorf("sys: netlink request: %w", err)
			}
			return true, nil
		}
		if err := fn(m); err != nil {
			return false, err
		}
	}
	return false, nil
}
