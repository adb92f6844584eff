package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Route is the kernel's answer to "how would a packet to Dst leave this
// host?", as `ip route get` prints it.
type Route struct {
	Dst     netip.Addr
	Type    string       // "unicast", "local", "unreachable", "blackhole", "prohibit", ...
	Prefix  netip.Prefix // the matching routing table entry, when the kernel says
	Gateway netip.Addr   // zero when the destination is on the link
	Src     netip.Addr   // the source address the kernel would pick
	IfIndex int          // outgoing interface; 0 when none
	Table   int
}

// Route message types and attributes (linux/rtnetlink.h).
const (
	rtmNewRoute = 24
	rtmGetRoute = 26

	rtaDst     = 1
	rtaSrc     = 2
	rtaOIF     = 4
	rtaGateway = 5
	rtaPrefSrc = 7
	rtaTable   = 15

	rtmFFibMatch = 0x2000

	rtmsgLen = 12
)

var routeTypes = [...]string{0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
	5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat", 11: "xresolve"}

func routeTypeName(t uint8) string {
	if int(t) < len(routeTypes) {
		return routeTypes[t]
	}
	return fmt.Sprintf("type-%d", t)
}

// routeRequest frames an RTM_GETROUTE request for dst, from src and out
// of interface oif when they are set (ip route get DST from SRC oif DEV).
// With fibMatch the kernel returns the matching table entry (its prefix and
// type) instead of the resolved route.
func routeRequest(dst netip.Addr, from RouteFrom, seq uint32, fibMatch bool) []byte {
	family, bits := byte(2), byte(32) // AF_INET
	if dst.Is6() {
		family, bits = 10, 128 // AF_INET6
	}
	type attr struct {
		kind uint16
		val  []byte
	}
	attrs := []attr{{rtaDst, dst.AsSlice()}}
	if from.Src.IsValid() {
		attrs = append(attrs, attr{rtaSrc, from.Src.Unmap().AsSlice()})
	}
	if from.OIF > 0 {
		attrs = append(attrs, attr{rtaOIF, binary.NativeEndian.AppendUint32(nil, uint32(from.OIF))})
	}
	total := nlmsgHdrLen + rtmsgLen
	for _, a := range attrs {
		total += 4 + len(a.val) // addresses and u32s need no padding
	}
	b := make([]byte, total)
	binary.NativeEndian.PutUint32(b[0:4], uint32(total))
	binary.NativeEndian.PutUint16(b[4:6], rtmGetRoute)
	binary.NativeEndian.PutUint16(b[6:8], nlmFRequest)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	m := b[nlmsgHdrLen:]
	m[0], m[1] = family, bits
	if from.Src.IsValid() {
		m[2] = bits // rtm_src_len
	}
	if fibMatch {
		binary.NativeEndian.PutUint32(m[8:12], rtmFFibMatch)
	}
	a := m[rtmsgLen:]
	for _, at := range attrs {
		binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(at.val)))
		binary.NativeEndian.PutUint16(a[2:4], at.kind)
		copy(a[4:], at.val)
		a = a[4+len(at.val):]
	}
	return b
}

// RouteFrom narrows a route lookup to packets from an address of this host
// (Src) or leaving by an interface (OIF, its index); the zero value is any.
type RouteFrom struct {
	Src netip.Addr
	OIF int
}

// parseRouteReply finds the answer to request seq in a netlink buffer: a
// route, or the errno the kernel answered with (e.g. ENETUNREACH).
func parseRouteReply(b []byte, seq uint32) (Route, error) {
	msgs, err := ParseNetlink(b)
	if err != nil {
		return Route{}, err
	}
	for _, m := range msgs {
		if m.Seq != seq {
			continue
		}
		switch m.Type {
		case nlmsgError:
			if err := netlinkError(m.Data); err != nil {
				return Route{}, err
			}
		case rtmNewRoute:
			return parseRouteMsg(m.Data)
		}
	}
	return Route{}, errNoRouteReply
}

// errNoRouteReply means a buffer held no answer to our request.
var errNoRouteReply = errors.New("sys: no answer to the route request")

// parseRouteMsg decodes an rtmsg and its attributes.
func parseRouteMsg(b []byte) (Route, error) {
	if len(b) < rtmsgLen {
		return Route{}, fmt.Errorf("%w: rtmsg of %d bytes", ErrNetlinkTruncated, len(b))
	}
	r := Route{Type: routeTypeName(b[7]), Table: int(b[4])}
	dstLen := int(b[1])
	for a := b[rtmsgLen:]; len(a) >= 4; {
		n := int(binary.NativeEndian.Uint16(a[0:2]))
		if n < 4 || n > len(a) {
			return Route{}, fmt.Errorf("%w: route attribute length %d, %d bytes left",
				ErrNetlinkTruncated, n, len(a))
		}
		typ, val := binary.NativeEndian.Uint16(a[2:4])&0x3fff, a[4:n]
		switch typ {
		case rtaDst:
			if ip, ok := netip.AddrFromSlice(val); ok {
				r.Dst = ip
			}
		case rtaGateway:
			if ip, ok := netip.AddrFromSlice(val); ok {
				r.Gateway = ip
			}
		case rtaPrefSrc:
			if ip, ok := netip.AddrFromSlice(val); ok {
				r.Src = ip
			}
		case rtaOIF:
			if len(val) == 4 {
				r.IfIndex = int(binary.NativeEndian.Uint32(val))
			}
		case rtaTable:
			if len(val) == 4 {
				r.Table = int(binary.NativeEndian.Uint32(val))
			}
		}
		a = a[min((n+3)&^3, len(a)):]
	}
	switch {
	case r.Dst.IsValid() && dstLen <= r.Dst.BitLen():
		r.Prefix = netip.PrefixFrom(r.Dst, dstLen).Masked()
	case !r.Dst.IsValid() && dstLen == 0 && b[0] == 2: // a default route has no RTA_DST
		r.Prefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case !r.Dst.IsValid() && dstLen == 0 && b[0] == 10:
		r.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return r, nil
}

// mainTable is the routing table `ip route` shows (RT_TABLE_MAIN).
const mainTable = 254
