package kstat

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
)

func readNS(t *testing.T, h *netlab.Host) Snapshot {
	t.Helper()
	s, err := ReadNamespace("/run/netns/" + h.Name())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReadNamespace reads a lab namespace: its own port range, its own
// (fresh, zero) counters, and its inode.
func TestReadNamespace(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("k")
	h.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40099")
	s := readNS(t, h)
	ino, err := sys.NetnsInode("/run/netns/" + h.Name())
	if err != nil {
		t.Fatal(err)
	}
	if s.Netns != ino || s.PortRange != (PortRange{40000, 40099}) || s.PortRange.Size() != 100 {
		t.Errorf("netns %d (want %d), port range %v", s.Netns, ino, s.PortRange)
	}
	if v, ok := s.Counters[ListenOverflows]; !ok || v != 0 {
		t.Errorf("fresh namespace: ListenOverflows %d (present %v)", v, ok)
	}
	own, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if own.Netns == s.Netns || own.PortRange == s.PortRange {
		t.Errorf("own namespace read as the lab's: %d %v", own.Netns, own.PortRange)
	}
	if _, err := ReadNamespace("/run/netns/reach-no-such-ns"); err == nil {
		t.Error("no error for a missing namespace")
	}
}

// TestListenOverflowsDelta fills the accept queue of a listener that never
// accepts: the lab namespace's ListenOverflows and ListenDrops go up by the
// SYNs the kernel dropped.
func TestListenOverflowsDelta(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("k")
	var fd int
	var port int
	err := h.Do(func() error {
		var err error
		if fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		if err := syscall.Listen(fd, 0); err != nil { // an accept queue of one
			return err
		}
		sa, err := syscall.Getsockname(fd)
		port = sa.(*syscall.SockaddrInet4).Port
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	before := readNS(t, h)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 4 { // the first fills the queue; the others' SYNs are dropped
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		c, err := h.DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			defer c.Close()
		}
	}
	after := readNS(t, h)
	d, err := Diff(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if d.Counters[ListenOverflows] < 1 || d.Counters[ListenDrops] < d.Counters[ListenOverflows] {
		t.Errorf("ListenOverflows +%d, ListenDrops +%d; want at least 1, drops >= overflows", d.Counters[ListenOverflows], d.Counters[ListenDrops])
	}
	if d.Interval <= 0 {
		t.Errorf("interval %v", d.Interval)
	}
}

// TestSyncookiesDelta makes the lab namespace answer every SYN with a cookie
// (tcp_syncookies = 2): one connection counts one cookie sent and received.
func TestSyncookiesDelta(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("k")
	h.Sysctl(t, "net.ipv4.tcp_syncookies", "2")
	ln := h.Listen(t, "tcp", "127.0.0.1:0")
	before := readNS(t, h)
	c, err := h.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	d, err := Diff(before, readNS(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if d.Counters[SyncookiesSent] != 1 || d.Counters[SyncookiesRecv] != 1 {
		t.Errorf("SyncookiesSent +%d, SyncookiesRecv +%d; want 1 and 1", d.Counters[SyncookiesSent], d.Counters[SyncookiesRecv])
	}
}

// TestConntrackCount: a namespace whose rules use conntrack tracks a
// connection; one without such rules tracks nothing.
func TestConntrackCount(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	plain, tracked := lab.Host("plain"), lab.Host("tracked")
	tracked.Iptables(t, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	for _, h := range []*netlab.Host{plain, tracked} {
		ln := h.Listen(t, "tcp", "127.0.0.1:0")
		c, err := h.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for _, tt := range []struct {
		h       *netlab.Host
		tracked bool
	}{{plain, false}, {tracked, true}} {
		s := readNS(t, tt.h)
		c := s.Conntrack
		if c == nil {
			t.Fatalf("%s: no conntrack (is nf_conntrack loaded? missing %+v)", tt.h.Name(), s.Missing)
		}
		if (c.Count > 0) != tt.tracked || c.Max <= 0 || c.Full() || c.Stats == nil {
			t.Errorf("%s: conntrack %+v, want tracked=%v", tt.h.Name(), *c, tt.tracked)
		}
	}
}
