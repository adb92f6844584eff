package sys

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

var netlinkSeq atomic.Uint32

// toKernel returns the netlink address requests are sent to. Not a shared
// variable: Sendto writes its raw form into the value it is given.
func toKernel() *unix.SockaddrNetlink { return &unix.SockaddrNetlink{Family: unix.AF_NETLINK} }

// dumpBufs keeps receive buffers between dumps: listing every namespace of a
// host makes two dumps per namespace, and 64 KiB each was most of its garbage.
var dumpBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// NetlinkDump sends payload as a dump request of type typ on a new netlink
// socket of protocol proto (unix.NETLINK_*) and calls fn for every message of
// the reply. The socket is created on the calling thread, so it belongs to
// that thread's network namespace: callers inside a namespace (a locked
// thread after setns) see that namespace. m.Data is valid only until fn
// returns: the receive buffer is reused.
func NetlinkDump(ctx context.Context, proto int, typ uint16, payload []byte,
	fn func(NetlinkMessage) error) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return fmt.Errorf("sys: netlink socket (protocol %d): %w", proto, os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	// A receive timeout bounds each read, so a cancelled context is noticed
	// even if the kernel never answers.
	tv := unix.NsecToTimeval(int64(200e6))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("sys: netlink socket: %w", os.NewSyscallError("setsockopt", err))
	}
	seq := netlinkSeq.Add(1)
	if err := unix.Sendto(fd, netlinkRequest(typ, seq, payload), 0, toKernel()); err != nil {
		return fmt.Errorf("sys: netlink send: %w", os.NewSyscallError("sendto", err))
	}
	bp := dumpBufs.Get().(*[]byte)
	defer dumpBufs.Put(bp)
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sys: netlink receive: %w", os.NewSyscallError("recvfrom", err))
		}
		done, err := handleDumpPart(buf[:n], seq, fn)
		if err != nil || done {
			return err
		}
	}
}
