package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Layouts from linux/inet_diag.h. Ports and addresses are big-endian, the
// rest host-endian.
const (
	afInet  = 2
	afInet6 = 10

	ipprotoTCP = 6

	netlinkSockDiag  = 4  // NETLINK_SOCK_DIAG
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY

	inetDiagSKV6Only = 11     // INET_DIAG_SKV6ONLY attribute
	nlaTypeMask      = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER

	sizeofDiagSockID = 48 // inet_diag_sockid
	sizeofDiagReqV2  = 8 + sizeofDiagSockID
	sizeofDiagMsg    = 4 + sizeofDiagSockID + 20
)

// ErrShortDiagMsg means a sock_diag reply is shorter than inet_diag_msg.
var ErrShortDiagMsg = errors.New("sockets: short inet_diag_msg")

// diagRequest encodes an inet_diag_req_v2 asking for the TCP sockets of one
// address family in the given states (a bit mask of 1<<state).
func diagRequest(family uint8, states uint32) []byte {
	b := make([]byte, sizeofDiagReqV2)
	b[0] = family
	b[1] = ipprotoTCP
	binary.NativeEndian.PutUint32(b[4:8], states)
	return b
}

// parseDiagMsg decodes one inet_diag_msg and the attributes that follow it.
func parseDiagMsg(b []byte) (Socket, error) {
	if len(b) < sizeofDiagMsg {
		return Socket{}, fmt.Errorf("%w: %d bytes, want %d", ErrShortDiagMsg, len(b), sizeofDiagMsg)
	}
	family, state := b[0], b[1]
	id := b[4 : 4+sizeofDiagSockID]
	sport := binary.BigEndian.Uint16(id[0:2])
	dport := binary.BigEndian.Uint16(id[2:4])
	var s Socket
	switch family {
	case afInet:
		s.Proto = "tcp"
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[4:8])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[20:24])), dport)
	case afInet6:
		s.Proto = "tcp6"
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[4:20])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[20:36])), dport)
	default:
		return Socket{}, fmt.Errorf("sockets: inet_diag_msg of unknown address family %d", family)
	}
	rest := b[4+sizeofDiagSockID:]
	s.State = stateFromKernel(state)
	s.RecvQ = binary.NativeEndian.Uint32(rest[4:8])
	s.SendQ = binary.NativeEndian.Uint32(rest[8:12])
	s.UID = int(binary.NativeEndian.Uint32(rest[12:16]))
	s.Inode = uint64(binary.NativeEndian.Uint32(rest[16:20]))
	return s, parseDiagAttrs(b[sizeofDiagMsg:], &s)
}

// parseDiagAttrs reads the netlink attributes after an inet_diag_msg. The
// kernel always sends INET_DIAG_SKV6ONLY for IPv6 sockets in LISTEN or CLOSE.
func parseDiagAttrs(b []byte, s *Socket) error {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if n < 4 || n > len(b) {
			return fmt.Errorf("%w: attribute length %d, %d bytes left", ErrShortDiagMsg, n, len(b))
		}
		if typ == inetDiagSKV6Only && n >= 5 {
			s.V6Only = b[4] != 0
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return nil
}
