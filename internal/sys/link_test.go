package sys

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
)

// attr frames one rtattr, padded to 4 bytes.
func attr(typ uint16, v []byte) []byte {
	a := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(a[2:4], typ)
	a = append(a, v...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func i32(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }

// linkMsg builds an ifinfomsg for index with the given attributes.
func linkMsg(index int32, attrs ...[]byte) []byte {
	b := make([]byte, ifinfoLen)
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func TestParseLinkMsg(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want Link
	}{
		{"veth on a bridge, peer elsewhere", linkMsg(7,
			attr(iflaIfname, []byte("veth3f2a1b\x00")), attr(iflaLink, i32(2)), attr(iflaMaster, i32(4)),
			attr(iflaInfo, attr(infoKind, []byte("veth\x00"))), attr(iflaNetnsID, i32(3))),
			Link{Index: 7, Name: "veth3f2a1b", Kind: "veth", Master: 4, PeerIndex: 2, PeerNetnsID: 3}},
		{"loopback", linkMsg(1, attr(iflaIfname, []byte("lo\x00"))), Link{Index: 1, Name: "lo", PeerNetnsID: -1}},
		{"its own link is none", linkMsg(2, attr(iflaIfname, []byte("eth0")), attr(iflaLink, i32(2))),
			Link{Index: 2, Name: "eth0", PeerNetnsID: -1}},
		{"unknown attributes skipped", linkMsg(5, attr(99, []byte{1, 2, 3}), attr(iflaIfname, []byte("br0\x00")),
			attr(iflaInfo, cat(attr(2, []byte{9}), attr(infoKind, []byte("bridge\x00"))))),
			Link{Index: 5, Name: "br0", Kind: "bridge", PeerNetnsID: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLinkMsg(tc.msg)
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
	if _, err := parseLinkMsg(make([]byte, 10)); !errors.Is(err, ErrNetlinkTruncated) {
		t.Errorf("short message: %v", err)
	}
	bad := linkMsg(3, attr(iflaIfname, []byte("x")))
	binary.NativeEndian.PutUint16(bad[ifinfoLen:], 40) // longer than what is left
	if _, err := parseLinkMsg(bad); !errors.Is(err, ErrNetlinkTruncated) {
		t.Errorf("overlong attribute: %v", err)
	}
}

func TestParseNsidReply(t *testing.T) {
	reply := func(seq uint32, attrs ...[]byte) []byte {
		return msg(rtmNewNsid, 0, seq, cat(append([][]byte{make([]byte, rtgenLen)}, attrs...)...))
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		id      int
		ok      bool
		wantErr error
	}{
		{"assigned", reply(4, attr(netnsaNsid, i32(2))), 2, true, nil},
		{"not assigned", reply(4, attr(netnsaNsid, i32(-1))), -1, true, nil},
		{"no attribute", reply(4), -1, true, nil},
		{"someone else's", reply(5, attr(netnsaNsid, i32(2))), 0, false, nil},
		{"refused", errMsg(4, -int32(syscall.EBADF)), 0, true, syscall.EBADF},
		{"short", msg(rtmNewNsid, 0, 4, []byte{0}), 0, true, ErrNetlinkTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, ok, err := parseNsidReply(tc.b, 4)
			if !errors.Is(err, tc.wantErr) || ok != tc.ok || (err == nil && id != tc.id) {
				t.Errorf("got %d, %v, %v; want %d, %v, %v", id, ok, err, tc.id, tc.ok, tc.wantErr)
			}
		})
	}
	req := nsidRequest(9, 4)
	if len(req) != nlmsgHdrLen+rtgenLen+8 || binary.NativeEndian.Uint16(req[4:6]) != rtmGetNsid ||
		binary.NativeEndian.Uint32(req[len(req)-4:]) != 9 {
		t.Errorf("request framed wrong: % x", req)
	}
}

func FuzzParseLinkMsg(f *testing.F) {
	f.Add(linkMsg(7, attr(iflaIfname, []byte("veth0\x00")), attr(iflaInfo, attr(infoKind, []byte("veth"))), attr(iflaNetnsID, i32(1))))
	f.Add(make([]byte, ifinfoLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLinkMsg(b)
		if err == nil && l.PeerIndex == l.Index && l.PeerIndex != 0 && l.PeerNetnsID < 0 {
			t.Errorf("a device is its own peer: %+v", l)
		}
	})
}

func FuzzParseNsidReply(f *testing.F) {
	f.Add(msg(rtmNewNsid, 0, 4, cat(make([]byte, rtgenLen), attr(netnsaNsid, i32(2)))))
	f.Add(errMsg(4, -9))
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, ok, err := parseNsidReply(b, 4); !ok && (err == nil && id != 0) {
			t.Errorf("no answer, yet id %d", id)
		}
	})
}
