package sys

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNetlinkDumpLinks dumps the interfaces of this namespace, which always
// include the loopback device.
func TestNetlinkDumpLinks(t *testing.T) {
	ifinfo := make([]byte, unix.SizeofIfInfomsg) // family AF_UNSPEC: all links
	var n int
	err := NetlinkDump(context.Background(), unix.NETLINK_ROUTE, unix.RTM_GETLINK, ifinfo, func(m NetlinkMessage) error {
		if m.Type != unix.RTM_NEWLINK {
			t.Errorf("message type %d, want RTM_NEWLINK", m.Type)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no links dumped; the loopback device always exists")
	}
}

func TestNetlinkDumpCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := NetlinkDump(ctx, unix.NETLINK_ROUTE, unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg), func(NetlinkMessage) error { return nil })
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
