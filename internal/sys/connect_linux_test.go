package sys_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/internal/testnet"
)

func TestConnectOnce(t *testing.T) {
	open, closed := testnet.AddrPort(testnet.Listen(t)), testnet.ClosedPort(t)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		dst    netip.AddrPort
		src    netip.Addr
		device string
		errno  syscall.Errno // 0: connected
		op     string        // the failed step
		is     error
	}{
		{name: "open", dst: open},
		{name: "open from a source", dst: open, src: netip.MustParseAddr("127.0.0.2")},
		{name: "open by lo", dst: open, device: "lo"},
		{name: "refused", dst: closed, errno: syscall.ECONNREFUSED, op: "connect"},
		{name: "no such device", dst: open, device: "eth7", errno: syscall.ENODEV, op: "setsockopt SO_BINDTODEVICE"},
		{name: "source not here", dst: open, src: netip.MustParseAddr("198.18.0.9"), errno: syscall.EADDRNOTAVAIL, op: "bind"},
		{name: "canceled", ctx: canceled, dst: open, is: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			a := sys.ConnectOnce(ctx, tt.dst, tt.src, tt.device)
			switch {
			case tt.is != nil:
				if !errors.Is(a.Err, tt.is) {
					t.Fatalf("err %v, want %v", a.Err, tt.is)
				}
			case tt.errno == 0:
				if a.Err != nil || !a.Local.IsValid() {
					t.Fatalf("err %v local %v, want connected", a.Err, a.Local)
				}
				if tt.src.IsValid() && a.Local.Addr() != tt.src {
					t.Errorf("left from %v, want %v", a.Local, tt.src)
				}
			default:
				var se *os.SyscallError
				if !errors.As(a.Err, &se) || se.Syscall != tt.op || !errors.Is(a.Err, tt.errno) {
					t.Fatalf("err %v, want %s: %v", a.Err, tt.op, tt.errno)
				}
				// A reset brings no ICMP error, and the queue was read
				// only when the connect itself failed.
				if a.HasICMP || a.QueueRead != (tt.op == "connect") {
					t.Errorf("icmp %v, queue read %v", a.HasICMP, a.QueueRead)
				}
			}
		})
	}
}

func TestTryBind(t *testing.T) {
	tests := []struct {
		src    string
		device string
		op     string
		errno  syscall.Errno
	}{
		{"127.0.0.1", "", "", 0},
		{"127.0.0.9", "lo", "", 0}, // a local route holds all of 127/8
		{"", "lo", "", 0},
		{"198.18.0.9", "", "bind", syscall.EADDRNOTAVAIL},
		{"", "eth7", "setsockopt SO_BINDTODEVICE", syscall.ENODEV},
	}
	for _, tt := range tests {
		var src netip.Addr
		if tt.src != "" {
			src = netip.MustParseAddr(tt.src)
		}
		err := sys.TryBind(src, tt.device)
		if tt.op == "" {
			if err != nil {
				t.Errorf("TryBind(%s, %q): %v", tt.src, tt.device, err)
			}
			continue
		}
		var se *os.SyscallError
		if !errors.As(err, &se) || se.Syscall != tt.op || !errors.Is(err, tt.errno) {
			t.Errorf("TryBind(%s, %q): %v, want %s: %v", tt.src, tt.device, err, tt.op, tt.errno)
		}
	}
}

// DialSocket is net.Dialer's Control: it binds the device, and its second
// descriptor outlives net's, so the error queue can be read after a
// failed dial (empty here: a reset brings no ICMP error).
func TestDialSocket(t *testing.T) {
	open, closed := testnet.AddrPort(testnet.Listen(t)), testnet.ClosedPort(t)
	s := &sys.DialSocket{Device: "lo"}
	d := net.Dialer{Control: s.Control}
	c, err := d.DialContext(t.Context(), "tcp", open.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()

	s = &sys.DialSocket{}
	d = net.Dialer{Control: s.Control}
	if _, err := d.DialContext(t.Context(), "tcp", closed.String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %v: %v, want refused", closed, err)
	}
	if !s.Reads() {
		t.Fatal("the second descriptor is gone with net's")
	}
	if _, ok := s.Unreachable(closed.Port()); ok {
		t.Error("an ICMP error for a reset")
	}
	s.Close()
	if s.Reads() {
		t.Error("Close kept the descriptor")
	}

	s = &sys.DialSocket{Device: "eth7"}
	d = net.Dialer{Control: s.Control}
	var se *os.SyscallError
	if _, err := d.DialContext(t.Context(), "tcp", open.String()); !errors.As(err, &se) || !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("dial by eth7: %v, want setsockopt SO_BINDTODEVICE: ENODEV", err)
	}
	s.Close()
}
