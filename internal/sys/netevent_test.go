package sys

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func addrMsg(family, bits byte, index int32, attrs ...[]byte) []byte {
	b := []byte{family, bits, 0, 0}
	b = binary.NativeEndian.AppendUint32(b, uint32(index))
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func TestParseNetEvent(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.5").AsSlice()
	peer := netip.MustParseAddr("198.18.0.6").AsSlice()
	gen := binary.BigEndian.AppendUint32(nil, 77)
	tests := []struct {
		name string
		m    NetlinkMessage
		ok   bool
		want NetEvent
	}{
		{"address added", NetlinkMessage{Type: rtmNewAddr, Data: addrMsg(2, 24, 3, attr(ifaAddress, v4))}, true,
			NetEvent{Kind: "address", Addr: netip.MustParsePrefix("198.18.0.5/24"), IfIndex: 3}},
		{"point-to-point: local is ours", NetlinkMessage{Type: rtmDelAddr,
			Data: addrMsg(2, 32, 4, attr(ifaAddress, peer), attr(ifaLocal, v4))}, true,
			NetEvent{Kind: "address", Removed: true, Addr: netip.MustParsePrefix("198.18.0.5/32"), IfIndex: 4}},
		{"route removed", NetlinkMessage{Type: rtmDelRoute,
			Data: routeMsg(2, 24, 1, map[uint16][]byte{rtaDst: v4, rtaOIF: u32(2)})}, true,
			NetEvent{Kind: "route", Removed: true, IfIndex: 2, Route: Route{Dst: netip.MustParseAddr("198.18.0.5"),
				Prefix: netip.MustParsePrefix("198.18.0.0/24"), Type: "unicast", IfIndex: 2}}},
		{"link down", NetlinkMessage{Type: rtmNewLink, Data: linkMsg(5, attr(iflaIfname, []byte("eth0\x00")))}, true,
			NetEvent{Kind: "link", IfIndex: 5, Link: Link{Index: 5, Name: "eth0", PeerNetnsID: -1}}},
		{"nft generation", NetlinkMessage{Type: nfnlSubsysNftables<<8 | nftMsgNewGen,
			Data: append([]byte{0, 0, 0, 0}, attr(nftaGenID, gen)...)}, true, NetEvent{Kind: "firewall", Gen: 77}},
		{"nft rule is not a commit", NetlinkMessage{Type: nfnlSubsysNftables<<8 | 6, Data: []byte{0, 0, 0, 0}}, false,
			NetEvent{}},
		{"ack", NetlinkMessage{Type: nlmsgError, Data: make([]byte, 20)}, false, NetEvent{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseNetEvent(tt.m)
			if err != nil || ok != tt.ok {
				t.Fatalf("ParseNetEvent = %+v, %v, %v; want ok %v", got, ok, err, tt.ok)
			}
			if ok && got != tt.want {
				t.Errorf("ParseNetEvent =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestParseNetEventTruncated(t *testing.T) {
	for _, typ := range []uint16{rtmNewAddr, rtmNewRoute, rtmNewLink, nfnlSubsysNftables<<8 | nftMsgNewGen} {
		if _, _, err := ParseNetEvent(NetlinkMessage{Type: typ, Data: []byte{2}}); err == nil {
			t.Errorf("type %#x: a one-byte message parsed without error", typ)
		}
	}
}

func FuzzParseNetEvent(f *testing.F) {
	f.Add(uint16(rtmNewAddr), addrMsg(2, 24, 3, attr(ifaAddress, []byte{198, 18, 0, 5})))
	f.Add(uint16(rtmNewLink), linkMsg(5, attr(iflaIfname, []byte("eth0\x00"))))
	f.Add(uint16(nfnlSubsysNftables<<8|nftMsgNewGen), []byte{0, 0, 0, 0, 8, 0, 1, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, typ uint16, data []byte) {
		ev, ok, err := ParseNetEvent(NetlinkMessage{Type: typ, Data: data})
		if err != nil && ok {
			t.Errorf("ok with an error: %v", err)
		}
		if ev.Kind == "address" && ev.Addr.IsValid() && ev.Addr.Bits() > ev.Addr.Addr().BitLen() {
			t.Errorf("prefix longer than its address: %v", ev.Addr)
		}
	})
}
