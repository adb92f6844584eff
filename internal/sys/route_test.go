package sys

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

// routeMsg builds an RTM_NEWROUTE payload: rtmsg plus attributes.
func routeMsg(family, dstLen, typ byte, attrs map[uint16][]byte) []byte {
	b := make([]byte, rtmsgLen)
	b[0], b[1], b[7] = family, dstLen, typ
	for _, k := range []uint16{rtaDst, rtaOIF, rtaGateway, rtaPrefSrc, rtaTable} {
		v, ok := attrs[k]
		if !ok {
			continue
		}
		a := make([]byte, 4, 4+len(v)+3)
		binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(a[2:4], k)
		a = append(a, v...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		b = append(b, a...)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestParseRouteMsg(t *testing.T) {
	gw := netip.MustParseAddr("198.18.0.1")
	src := netip.MustParseAddr("198.18.0.2")
	b := routeMsg(2, 24, 1, map[uint16][]byte{
		rtaDst: {198, 18, 5, 0}, rtaGateway: gw.AsSlice(), rtaPrefSrc: src.AsSlice(), rtaOIF: u32(3), rtaTable: u32(254),
	})
	r, err := parseRouteMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Route{Dst: netip.MustParseAddr("198.18.5.0"), Type: "unicast", Prefix: netip.MustParsePrefix("198.18.5.0/24"), Gateway: gw, Src: src, IfIndex: 3, Table: 254}
	if r != want {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	def, err := parseRouteMsg(routeMsg(10, 0, 7, nil))
	if err != nil || def.Prefix.String() != "::/0" || def.Type != "unreachable" {
		t.Errorf("default v6 unreachable: %+v, %v", def, err)
	}
	if _, err := parseRouteMsg(b[:5]); !errors.Is(err, ErrNetlinkTruncated) {
		t.Errorf("short rtmsg: %v", err)
	}
	bad := append([]byte(nil), b...)
	binary.NativeEndian.PutUint16(bad[rtmsgLen:], 200)
	if _, err := parseRouteMsg(bad); !errors.Is(err, ErrNetlinkTruncated) {
		t.Errorf("overlong attribute: %v", err)
	}
}

func TestParseRouteReply(t *testing.T) {
	frame := func(typ uint16, seq uint32, data []byte) []byte {
		h := make([]byte, nlmsgHdrLen)
		binary.NativeEndian.PutUint32(h[0:4], uint32(nlmsgHdrLen+len(data)))
		binary.NativeEndian.PutUint16(h[4:6], typ)
		binary.NativeEndian.PutUint32(h[8:12], seq)
		return append(h, data...)
	}
	ok := frame(rtmNewRoute, 7, routeMsg(2, 32, 2, map[uint16][]byte{rtaDst: {127, 0, 0, 1}}))
	if r, err := parseRouteReply(ok, 7); err != nil || r.Type != "local" {
		t.Errorf("reply: %+v, %v", r, err)
	}
	if _, err := parseRouteReply(ok, 8); err != errNoRouteReply {
		t.Errorf("reply to another request: %v, want errNoRouteReply", err)
	}
	neg := -int32(syscall.ENETUNREACH)
	errno := frame(nlmsgError, 9, u32(uint32(neg)))
	if _, err := parseRouteReply(errno, 9); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("error reply: %v, want ENETUNREACH", err)
	}
	req := routeRequest(netip.MustParseAddr("fd00::2"), RouteFrom{}, 5, true)
	if len(req) != nlmsgHdrLen+rtmsgLen+4+16 || req[nlmsgHdrLen] != 10 || req[nlmsgHdrLen+1] != 128 {
		t.Errorf("v6 request framed wrong: % x", req)
	}
	// From a source and by an interface: RTA_SRC with rtm_src_len, RTA_OIF.
	req = routeRequest(netip.MustParseAddr("198.18.0.2"), RouteFrom{netip.MustParseAddr("198.18.0.1"), 3}, 6, false)
	attr := func(k uint16, v []byte) string {
		b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
		return string(append(binary.NativeEndian.AppendUint16(b, k), v...))
	}
	want := attr(rtaDst, []byte{198, 18, 0, 2}) + attr(rtaSrc, []byte{198, 18, 0, 1}) + attr(rtaOIF, u32(3))
	if len(req) != nlmsgHdrLen+rtmsgLen+len(want) || req[nlmsgHdrLen+2] != 32 ||
		string(req[nlmsgHdrLen+rtmsgLen:]) != want {
		t.Errorf("request from a source by an interface framed wrong: % x", req)
	}
}

func FuzzParseRouteMsg(f *testing.F) {
	f.Add(routeMsg(2, 24, 1, map[uint16][]byte{rtaDst: {198, 18, 5, 0}, rtaOIF: u32(3)}))
	f.Add(routeMsg(10, 0, 7, nil))
	f.Add([]byte{2, 33, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 8, 0, 1, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRouteMsg(b)
		if err == nil && r.Prefix.IsValid() && !r.Prefix.Contains(r.Prefix.Addr()) {
			t.Errorf("prefix %v does not contain its own address", r.Prefix)
		}
	})
}
