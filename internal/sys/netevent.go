package sys

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// NetEvent is one notification of a change to a network namespace's
// configuration: a route, an address or a link the kernel added, changed or
// removed (rtnetlink), or a new nf_tables rule-set generation (a committed
// firewall change, by nft or by iptables-nft).
type NetEvent struct {
	Kind    string       // "route", "address", "link", "firewall", or "overflow"
	Removed bool         // RTM_DEL*: the route, address or link went away
	Route   Route        // Kind "route": Prefix, Gateway, IfIndex, Type, Table
	Addr    netip.Prefix // Kind "address": the address and its prefix length
	IfIndex int          // the interface, for "address" and "link" (and routes' Route.IfIndex)
	Link    Link         // Kind "link": Index, Name and Up
	Gen     uint32       // Kind "firewall": the nf_tables generation id
}

// rtnetlink notification types and nf_tables subsystem values
// (linux/rtnetlink.h, linux/netfilter/nfnetlink.h, nf_tables.h).
const (
	rtmDelLink  = 17
	rtmNewAddr  = 20
	rtmDelAddr  = 21
	rtmDelRoute = 25
	ifaAddress  = 1
	ifaLocal    = 2
	ifaddrLen   = 8

	iffUp      = 0x1
	iffRunning = 0x40

	nfnlSubsysNftables = 10
	nftMsgNewGen       = 15
	nfgenLen           = 4
	nftaGenID          = 1
)

// ParseNetEvent decodes one notification received on a socket that
// SubscribeNet opened. ok is false for messages that are not changes this
// package reports (acknowledgements, nf_tables messages other than the
// generation that closes a transaction).
func ParseNetEvent(m NetlinkMessage) (ev NetEvent, ok bool, err error) {
	switch m.Type {
	case rtmNewRoute, rtmDelRoute:
		r, err := parseRouteMsg(m.Data)
		if err != nil {
			return NetEvent{}, false, err
		}
		return NetEvent{Kind: "route", Removed: m.Type == rtmDelRoute, Route: r, IfIndex: r.IfIndex}, true, nil
	case rtmNewAddr, rtmDelAddr:
		a, idx, err := parseAddrMsg(m.Data)
		if err != nil {
			return NetEvent{}, false, err
		}
		return NetEvent{Kind: "address", Removed: m.Type == rtmDelAddr, Addr: a, IfIndex: idx}, true, nil
	case rtmNewLink, rtmDelLink:
		l, err := parseLinkMsg(m.Data)
		if err != nil {
			return NetEvent{}, false, err
		}
		return NetEvent{Kind: "link", Removed: m.Type == rtmDelLink, Link: l, IfIndex: l.Index}, true, nil
	case nfnlSubsysNftables<<8 | nftMsgNewGen:
		if len(m.Data) < nfgenLen {
			return NetEvent{}, false, fmt.Errorf("%w: nfgenmsg of %d bytes", ErrNetlinkTruncated, len(m.Data))
		}
		ev := NetEvent{Kind: "firewall"}
		err := attrs(m.Data[nfgenLen:], func(typ uint16, val []byte) error {
			if typ == nftaGenID && len(val) == 4 {
				ev.Gen = binary.BigEndian.Uint32(val) // netfilter attributes are big-endian
			}
			return nil
		})
		return ev, err == nil, err
	}
	return NetEvent{}, false, nil
}

// parseAddrMsg decodes an ifaddrmsg and its attributes: the address with
// its prefix length, and the interface index.
func parseAddrMsg(b []byte) (netip.Prefix, int, error) {
	if len(b) < ifaddrLen {
		return netip.Prefix{}, 0, fmt.Errorf("%w: ifaddrmsg of %d bytes", ErrNetlinkTruncated, len(b))
	}
	bits, idx := int(b[1]), int(binary.NativeEndian.Uint32(b[4:8]))
	var addr, local netip.Addr
	err := attrs(b[ifaddrLen:], func(typ uint16, val []byte) error {
		ip, ok := netip.AddrFromSlice(val)
		switch {
		case !ok:
		case typ == ifaAddress:
			addr = ip
		case typ == ifaLocal:
			local = ip
		}
		return nil
	})
	if err != nil {
		return netip.Prefix{}, 0, err
	}
	// On point-to-point links IFA_ADDRESS is the peer's; IFA_LOCAL is ours.
	if local.IsValid() {
		addr = local
	}
	if !addr.IsValid() || bits > addr.BitLen() {
		return netip.Prefix{}, idx, nil
	}
	return netip.PrefixFrom(addr, bits), idx, nil
}
