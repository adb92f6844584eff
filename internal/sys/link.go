package sys

import (
	"encoding/binary"
	"fmt"
)

// Link is one network interface as RTM_GETLINK describes it: enough to
// tell which other network namespaces a namespace is wired to (the far end
// of a veth pair lives in another namespace: a container's, a pod's).
type Link struct {
	Index int
	Name  string
	// Kind is the driver's name for it: "veth", "bridge", "macvlan", ...;
	// empty for devices without one (lo, most physical ones).
	Kind string
	// Master is the index of the bridge (or bond) it is enslaved to; 0
	// when none.
	Master int
	// PeerIndex is the index of its peer (a veth's other end, a macvlan's
	// lower device), in the namespace PeerNetnsID names; 0 when none.
	PeerIndex int
	// PeerNetnsID is the id this namespace gives the namespace the peer
	// is in (see NetnsIDs), or -1 when the peer is in this namespace or
	// there is none.
	PeerNetnsID int
	// Up: the administrator set it up and it has carrier (IFF_UP and
	// IFF_RUNNING).
	Up bool
}

// Link message types and attributes (linux/rtnetlink.h, linux/if_link.h,
// linux/net_namespace.h).
const (
	rtmNewLink  = 16
	rtmGetLink  = 18
	rtmNewNsid  = 88
	rtmGetNsid  = 90
	ifinfoLen   = 16
	rtgenLen    = 4 // struct rtgenmsg, one byte, padded to 4
	iflaIfname  = 3
	iflaLink    = 5
	iflaMaster  = 10
	iflaInfo    = 18
	iflaNetnsID = 37
	infoKind    = 1
	netnsaNsid  = 1
	netnsaFD    = 3
)

// linkRequest is the payload of an RTM_GETLINK dump: an ifinfomsg for
// every family.
func linkRequest() []byte { return make([]byte, ifinfoLen) }

// parseLinkMsg decodes an RTM_NEWLINK message: an ifinfomsg and its
// attributes. Strings are copied out of b.
func parseLinkMsg(b []byte) (Link, error) {
	if len(b) < ifinfoLen {
		return Link{}, fmt.Errorf("%w: ifinfomsg of %d bytes", ErrNetlinkTruncated, len(b))
	}
	flags := binary.NativeEndian.Uint32(b[8:12])
	l := Link{Index: int(int32(binary.NativeEndian.Uint32(b[4:8]))), PeerNetnsID: -1,
		Up: flags&iffUp != 0 && flags&iffRunning != 0}
	err := attrs(b[ifinfoLen:], func(typ uint16, val []byte) error {
		switch typ {
		case iflaIfname:
			l.Name = cString(val)
		case iflaLink:
			if len(val) == 4 {
				l.PeerIndex = int(int32(binary.NativeEndian.Uint32(val)))
			}
		case iflaMaster:
			if len(val) == 4 {
				l.Master = int(int32(binary.NativeEndian.Uint32(val)))
			}
		case iflaNetnsID:
			if len(val) == 4 {
				l.PeerNetnsID = int(int32(binary.NativeEndian.Uint32(val)))
			}
		case iflaInfo:
			return attrs(val, func(typ uint16, val []byte) error {
				if typ == infoKind {
					l.Kind = cString(val)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return Link{}, err
	}
	// A device is its own "link" when it has none (the kernel reports
	// IFLA_LINK = ifindex for some of them): no peer.
	if l.PeerIndex == l.Index && l.PeerNetnsID < 0 {
		l.PeerIndex = 0
	}
	return l, nil
}

// nsidRequest frames an RTM_GETNSID request: the id the receiving socket's
// namespace gives the namespace open as fd.
func nsidRequest(fd int, seq uint32) []byte {
	const attrLen = 8
	total := nlmsgHdrLen + rtgenLen + attrLen
	b := make([]byte, total)
	binary.NativeEndian.PutUint32(b[0:4], uint32(total))
	binary.NativeEndian.PutUint16(b[4:6], rtmGetNsid)
	binary.NativeEndian.PutUint16(b[6:8], nlmFRequest)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	a := b[nlmsgHdrLen+rtgenLen:]
	binary.NativeEndian.PutUint16(a[0:2], attrLen)
	binary.NativeEndian.PutUint16(a[2:4], netnsaFD)
	binary.NativeEndian.PutUint32(a[4:8], uint32(fd))
	return b
}

// parseNsidReply finds the answer to request seq in a netlink buffer: the
// id (-1 when the namespace has none here), or the errno the kernel
// answered with. ok is false when b holds no answer to seq.
func parseNsidReply(b []byte, seq uint32) (id int, ok bool, err error) {
	msgs, err := ParseNetlink(b)
	if err != nil {
		return 0, false, err
	}
	for _, m := range msgs {
		if m.Seq != seq {
			continue
		}
		switch m.Type {
		case nlmsgError:
			if err := netlinkError(m.Data); err != nil {
				return 0, true, err
			}
		case rtmNewNsid:
			if len(m.Data) < rtgenLen {
				return 0, true, fmt.Errorf("%w: nsid message of %d bytes", ErrNetlinkTruncated, len(m.Data))
			}
			id = -1
			err := attrs(m.Data[rtgenLen:], func(typ uint16, val []byte) error {
				if typ == netnsaNsid && len(val) == 4 {
					id = int(int32(binary.NativeEndian.Uint32(val)))
				}
				return nil
			})
			return id, true, err
		}
	}
	return 0, false, nil
}

// attrs calls fn for each rtattr in b, with its type (flags masked off)
// and value.
func attrs(b []byte, fn func(typ uint16, val []byte) error) error {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < 4 || n > len(b) {
			return fmt.Errorf("%w: attribute length %d, %d bytes left", ErrNetlinkTruncated, n, len(b))
		}
		if err := fn(binary.NativeEndian.Uint16(b[2:4])&0x3fff, b[4:n]); err != nil {
			return err
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return nil
}

// cString is a NUL-terminated attribute value as a string (a copy).
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
