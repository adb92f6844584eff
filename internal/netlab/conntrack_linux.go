package netlab

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// MaxConntrackFill bounds the entries FillConntrack makes: each costs the
// kernel about 300 bytes.
const MaxConntrackFill = 1 << 20

// FillConntrack fills h's connection tracking table up to the kernel's
// limit, as a table full of live connections is: nf_conntrack_max is one
// limit for every namespace, writable only in the host's, but each
// namespace counts its own entries against it, so only h is full. The
// entries are assured UDP flows between two lab addresses that no packet
// uses (inserted over ctnetlink, as conntrack -I does), so the kernel can
// evict none of them for a new connection, which it drops instead. They go
// with h's namespace. It returns how many it made.
//
// A packet is tracked only in a namespace whose rules use conntrack: give
// h such a rule (-m conntrack, ct state) for its connections to be dropped.
// It fails the test when nf_conntrack is not loaded or the limit is above
// MaxConntrackFill.
func (h *Host) FillConntrack(t testing.TB) int {
	t.Helper()
	max, err := readSysctlInt("/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		t.Fatalf("netlab: FillConntrack needs nf_conntrack (modprobe nf_conntrack): %v", err)
	}
	if max > MaxConntrackFill {
		t.Fatalf("netlab: nf_conntrack_max is %d: more entries than FillConntrack makes (%d)", max, MaxConntrackFill)
	}
	made := 0
	err = h.Do(func() error {
		have, err := readSysctlInt("/proc/sys/net/netfilter/nf_conntrack_count")
		if err != nil {
			return err
		}
		made, err = insertConntrack(max - have)
		return err
	})
	if err != nil {
		t.Fatalf("netlab: FillConntrack in %s: %v", h.name, err)
	}
	return made
}

func readSysctlInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// ctnetlink's numbers (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctMsgNew        = 1<<8 | 0 // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
	ctaTupleOrig    = 1
	ctaTupleReply   = 2
	ctaStatus       = 3
	ctaTimeout      = 7
	ctaTupleIP      = 1
	ctaTupleProto   = 2
	ctaIPv4Src      = 1
	ctaIPv4Dst      = 2
	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
	nlaNested       = 0x8000
	ipsSeenReply    = 1 << 1
	ipsAssured      = 1 << 2
	ipsConfirmed    = 1 << 3 // ctnetlink confirms what it creates: the status must say so
	nlmCreateExcl   = 0x400 | 0x200
	ctBatch         = 256 // messages per send
)

// Addresses of the flows FillConntrack makes: in the lab's range, on no host.
var ctSrc, ctDst = [4]byte{198, 19, 255, 1}, [4]byte{198, 19, 255, 2}

// insertConntrack adds n assured UDP entries to the calling thread's
// namespace; it stops early when the table is full (ENOMEM).
func insertConntrack(n int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("ctnetlink socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return 0, err
	}
	made, seq := 0, uint32(1)
	buf := make([]byte, 1<<16)
	for made < n {
		var batch []byte
		k := min(ctBatch, n-made)
		first := seq
		for j := range k {
			// Only the batch's last message asks for an ack: the kernel
			// answers the others only when they fail.
			batch = append(batch, ctNew(seq, made+j, j == k-1)...)
			seq++
		}
		if err := syscall.Sendto(fd, batch, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
			return made, fmt.Errorf("ctnetlink send: %w", err)
		}
		last, failed, full := seq-1, 0, false
		for done := false; !done; {
			m, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				return made, fmt.Errorf("ctnetlink receive: %w", err)
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:m])
			if err != nil {
				return made, err
			}
			for _, msg := range msgs {
				if msg.Header.Type != syscall.NLMSG_ERROR || msg.Header.Seq < first || len(msg.Data) < 4 {
					continue
				}
				done = done || msg.Header.Seq == last
				switch errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(msg.Data[:4]))); {
				case errno == 0:
				case errno == syscall.ENOMEM:
					failed++
					full = true
				default:
					return made, fmt.Errorf("ctnetlink: %w", errno)
				}
			}
		}
		made += k - failed
		if full {
			return made, nil
		}
	}
	return made, nil
}

// ctNew is an IPCTNL_MSG_CT_NEW request for flow i: UDP between ctSrc and
// ctDst, ports from i, assured, for ten minutes.
func ctNew(seq uint32, i int, ack bool) []byte {
	sport, dport := uint16(1+i%65535), uint16(1+i/65535)
	tuple := func(src, dst [4]byte, sp, dp uint16) []byte {
		ip := append(attr(ctaIPv4Src, src[:]), attr(ctaIPv4Dst, dst[:])...)
		proto := append(attr(ctaProtoNum, []byte{syscall.IPPROTO_UDP}), attr(ctaProtoSrcPort, be16(sp))...)
		proto = append(proto, attr(ctaProtoDstPort, be16(dp))...)
		return append(attr(ctaTupleIP|nlaNested, ip), attr(ctaTupleProto|nlaNested, proto)...)
	}
	body := []byte{syscall.AF_INET, 0, 0, 0} // nfgenmsg: family, version 0, res_id
	body = append(body, attr(ctaTupleOrig|nlaNested, tuple(ctSrc, ctDst, sport, dport))...)
	body = append(body, attr(ctaTupleReply|nlaNested, tuple(ctDst, ctSrc, dport, sport))...)
	body = append(body, attr(ctaStatus, be32(ipsConfirmed|ipsAssured|ipsSeenReply))...)
	body = append(body, attr(ctaTimeout, be32(600))...)
	msg := make([]byte, syscall.NLMSG_HDRLEN, syscall.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(syscall.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], ctMsgNew)
	flags := uint16(syscall.NLM_F_REQUEST | nlmCreateExcl)
	if ack {
		flags |= syscall.NLM_F_ACK
	}
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	return append(msg, body...)
}

// attr is a netlink attribute, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	n := 4 + len(data)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
