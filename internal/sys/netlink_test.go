package sys

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
)

// msg builds one netlink message as the kernel would, padded to 4 bytes.
func msg(typ, flags uint16, seq uint32, data []byte) []byte {
	n := nlmsgHdrLen + len(data)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint32(b[0:4], uint32(n))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	copy(b[nlmsgHdrLen:], data)
	return b
}

func errMsg(seq uint32, errno int32) []byte {
	d := make([]byte, 4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(d, uint32(errno))
	return msg(nlmsgError, 0, seq, d)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseNetlink(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []string // payloads
		wantErr error
	}{
		{"empty", nil, nil, nil},
		{"one", msg(20, 2, 1, []byte("abc")), []string{"abc"}, nil},
		{"two padded", cat(msg(20, 2, 1, []byte("a")), msg(20, 2, 1, []byte("hello"))), []string{"a", "hello"}, nil},
		{"last unpadded", msg(20, 2, 1, []byte("abcde"))[:nlmsgHdrLen+5], []string{"abcde"}, nil},
		{"length past end", msg(20, 2, 1, []byte("abc"))[:nlmsgHdrLen+2], nil, ErrNetlinkTruncated},
		{"length below header", func() []byte { b := msg(20, 2, 1, nil); b[0] = 4; return b }(), nil, ErrNetlinkTruncated},
		{"trailing garbage", cat(msg(20, 2, 1, nil), []byte{1, 2}), []string{""}, ErrNetlinkTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNetlink(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d messages, want %d", len(got), len(tt.want))
			}
			for i, m := range got {
				if string(m.Data) != tt.want[i] || m.Type != 20 || m.Seq != 1 {
					t.Errorf("message %d = %+v, want payload %q", i, m, tt.want[i])
				}
			}
		})
	}
}

func TestHandleDumpPart(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantData int
		wantDone bool
		wantErr  error
	}{
		{"data only", cat(msg(20, 2, 7, []byte("x")), msg(20, 2, 7, []byte("y"))), 2, false, nil},
		{"data then done", cat(msg(20, 2, 7, []byte("x")), msg(nlmsgDone, 2, 7, []byte{0, 0, 0, 0})), 1, true, nil},
		{"other sequence ignored", cat(msg(20, 2, 8, []byte("x")), msg(nlmsgDone, 2, 7, nil)), 0, true, nil},
		{"error", errMsg(7, -int32(syscall.EPERM)), 0, false, syscall.EPERM},
		{"ack", errMsg(7, 0), 0, true, nil},
		{"interrupted", msg(20, 2|nlmFDumpIntr, 7, []byte("x")), 0, false, ErrNetlinkInterrupted},
		{"short error", msg(nlmsgError, 0, 7, []byte{1}), 0, false, ErrNetlinkTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			done, err := handleDumpPart(tt.in, 7, func(NetlinkMessage) error { n++; return nil })
			if !errors.Is(err, tt.wantErr) || done != tt.wantDone || n != tt.wantData {
				t.Fatalf("got done=%v err=%v data=%d, want done=%v err=%v data=%d", done, err, n, tt.wantDone, tt.wantErr, tt.wantData)
			}
		})
	}
}

func TestNetlinkRequest(t *testing.T) {
	b := netlinkRequest(20, 9, []byte("payload!"))
	msgs, err := ParseNetlink(b)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ParseNetlink(request) = %v, %v", msgs, err)
	}
	m := msgs[0]
	if m.Type != 20 || m.Seq != 9 || m.Flags != nlmFRequest|nlmFDump || string(m.Data) != "payload!" {
		t.Fatalf("request decoded as %+v", m)
	}
}

func FuzzParseNetlink(f *testing.F) {
	f.Add(cat(msg(20, 2, 1, []byte("a")), msg(nlmsgDone, 2, 1, nil)))
	f.Add(errMsg(1, -1))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := ParseNetlink(b)
		total := 0
		for _, m := range msgs {
			total += nlmsgHdrLen + len(m.Data)
		}
		if total > len(b) {
			t.Fatalf("messages cover %d bytes of %d", total, len(b))
		}
		if err == nil && len(b) > 0 && len(msgs) == 0 {
			t.Fatalf("no messages and no error for %d bytes", len(b))
		}
		_, _ = handleDumpPart(b, 1, func(NetlinkMessage) error { return nil })
	})
}
