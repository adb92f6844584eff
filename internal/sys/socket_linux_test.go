package sys_test

import (
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/internal/testnet"
)

// wait connects fd (non-blocking) to ap and waits for the poller to report it.
func wait(t *testing.T, p *sys.Poller, c *sys.Connector, fd int, ap netip.AddrPort) sys.Ready {
	t.Helper()
	if errno := c.Connect(fd, ap.Addr(), ap.Port(), 0); errno != syscall.EINPROGRESS {
		t.Fatalf("non-blocking connect to %v: %v, want EINPROGRESS", ap, errno)
	}
	if errno := p.Add(fd); errno != 0 {
		t.Fatal(errno)
	}
	for range 50 {
		ready, err := p.Wait(100 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ready {
			if r.FD == fd {
				return r
			}
			t.Fatalf("poller reported fd %d, watching only %d", r.FD, fd)
		}
	}
	t.Fatalf("connect to %v never finished", ap)
	return sys.Ready{}
}

func TestTCPSocketLoopback(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			open := testnet.AddrPort(testnet.ListenOn(t, tc.network, tc.addr))
			closed := testnet.ClosedPortOn(t, tc.network, tc.addr)
			v6 := tc.network == "tcp6"
			p, errno := sys.NewPoller(8)
			if errno != 0 {
				t.Fatal(errno)
			}
			defer p.Close()
			var c sys.Connector

			// Non-blocking: the answer comes through the poller.
			fd, errno := sys.NewTCPSocket(v6, 0)
			if errno != 0 {
				t.Fatal(errno)
			}
			if r := wait(t, p, &c, fd, open); r.Err {
				t.Errorf("open port: ready with an error pending")
			}
			if errno := sys.SocketError(fd); errno != 0 {
				t.Errorf("open port: SO_ERROR %v", errno)
			}
			// Linux says 0 to the first connect after the one in progress
			// completes, EISCONN to the next.
			if errno := c.Connect(fd, open.Addr(), open.Port(), 0); errno != 0 && errno != syscall.EISCONN {
				t.Errorf("connect again: %v, want 0 or EISCONN", errno)
			}
			if la, ok := sys.LocalAddr(fd); !ok || la.Addr() != open.Addr() || la.Port() == 0 {
				t.Errorf("local address %v %v", la, ok)
			}
			sys.CloseReset(fd)

			fd, _ = sys.NewTCPSocket(v6, 0)
			if r := wait(t, p, &c, fd, closed); !r.Err {
				t.Errorf("closed port: ready without an error")
			}
			if errno := sys.SocketError(fd); errno != syscall.ECONNREFUSED {
				t.Errorf("closed port: SO_ERROR %v, want ECONNREFUSED", errno)
			}
			if errno := sys.SocketError(fd); errno != 0 {
				t.Errorf("SO_ERROR not cleared: %v", errno)
			}
			sys.Close(fd)

			// Blocking for a tick: loopback answers inside connect, and a
			// bound port survives a refusal, so the socket is used again.
			fd, errno = sys.NewTCPSocket(v6, time.Microsecond)
			if errno != 0 {
				t.Fatal(errno)
			}
			defer sys.Close(fd)
			sys.BindLoopbackPort(fd, v6)
			bound, ok := sys.LocalAddr(fd)
			if !ok || bound.Addr() != open.Addr() || bound.Port() == 0 {
				t.Fatalf("bound to %v %v, want a port on %v", bound, ok, open.Addr())
			}
			for range 3 {
				if errno := c.Connect(fd, closed.Addr(), closed.Port(), 0); errno != syscall.ECONNREFUSED {
					t.Fatalf("blocking connect to a closed port: %v, want ECONNREFUSED", errno)
				}
				if la, _ := sys.LocalAddr(fd); la != bound {
					t.Fatalf("after a refusal bound to %v, was %v", la, bound)
				}
			}
			if errno := c.Connect(fd, open.Addr(), open.Port(), 0); errno != 0 {
				t.Fatalf("blocking connect to an open port: %v", errno)
			}
			if errno := sys.SetNonblock(fd); errno != 0 {
				t.Fatal(errno)
			}
		})
	}
}

func TestRaiseFileLimit(t *testing.T) {
	got, err := sys.RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got != lim.Cur || got == 0 {
		t.Fatalf("RaiseFileLimit = %d, soft limit now %d (hard %d)", got, lim.Cur, lim.Max)
	}
}
