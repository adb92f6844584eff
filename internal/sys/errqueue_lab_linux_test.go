package sys_test

import (
	"net/netip"
	"strconv"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
)

// A firewall's REJECT comes back as an ICMP error the socket queues: the
// errno says EHOSTUNREACH, the queue says admin-prohibited and who sent it,
// but only when asked about the port the connect went to.
func TestErrQueueUnreachable(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	p := netlab.New(t).Pair()
	c, s, saddr := p.Client, p.Server, p.ServerAddr
	port := uint16(9)
	s.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(port)), "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	if err := c.Do(func() error {
		p, errno := sys.NewPoller(8)
		if errno != 0 {
			return errno
		}
		defer p.Close()
		var conn sys.Connector
		var q sys.ErrQueue
		for _, ask := range []uint16{port + 1, port} {
			fd, errno := sys.NewTCPSocket(false, 0)
			if errno != 0 {
				return errno
			}
			r := wait(t, p, &conn, fd, netip.AddrPortFrom(saddr, port))
			errno = sys.SocketError(fd)
			e, ok := q.Unreachable(fd, ask)
			sys.Close(fd)
			if !r.Err || errno != syscall.EHOSTUNREACH {
				t.Errorf("ready %+v, SO_ERROR %v; want an error, EHOSTUNREACH", r, errno)
			}
			switch {
			case ask != port && ok:
				t.Errorf("asked about port %d, got %+v about port %d", ask, e, port)
			case ask == port && (!ok || e.Origin != sys.OriginICMP || e.Type != 3 || e.Code != 13 || e.Offender != saddr):
				t.Errorf("got %+v %v, want ICMP type 3 code 13 from %v", e, ok, saddr)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
