package sockets

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// TestNamespaceMatchesSS lists the sockets of a fresh namespace, where the
// test knows every listener, and compares the whole table with ss run there.
func TestNamespaceMatchesSS(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("ports")
	var want []netip.AddrPort
	for _, a := range []string{"127.0.0.1:0", "[::1]:0", ":0"} {
		want = append(want, h.Listen(t, "tcp", a).Addr().(*net.TCPAddr).AddrPort())
	}
	// A child process in the namespace; the namespace is empty, so the port
	// is known to be free.
	childAddr := netip.MustParseAddrPort("127.0.0.1:5432")
	child := h.Start(t, "env", helperEnv+"=listen", helperAddrEnv+"="+childAddr.String(), os.Args[0], "-test.run=^$")
	want = append(want, childAddr)

	inNS := func(opt Options, netlink bool) Table {
		var tab Table
		err := h.Do(func() (err error) {
			tab, err = list(context.Background(), opt, netlink)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	testnet.Eventually(t, 10*time.Second, fmt.Sprintf("child pid %d listens on %v", child.Process.Pid, childAddr), func() bool {
		return len(inNS(Options{Port: childAddr.Port()}, true).Sockets) > 0
	})

	ss, err := parseSS(h.Run(t, "ss", "-ltnpH"))
	if err != nil {
		t.Fatal(err)
	}
	for _, netlink := range []bool{true, false} {
		tab := inNS(Options{}, netlink)
		ours := map[netip.AddrPort][]int{}
		for _, s := range tab.Sockets {
			for _, p := range s.Processes {
				ours[s.Local] = append(ours[s.Local], p.PID)
			}
			slices.Sort(ours[s.Local])
		}
		if fmt.Sprint(ours) != fmt.Sprint(ss) {
			t.Errorf("netlink=%v: we list %v\nss lists %v", netlink, ours, ss)
		}
		for i, ap := range want {
			pid := os.Getpid()
			if i == len(want)-1 {
				pid = child.Process.Pid
			}
			if !slices.Equal(ours[ap], []int{pid}) {
				t.Errorf("netlink=%v: %v owned by %v, want [%d]", netlink, ap, ours[ap], pid)
			}
		}
		if len(tab.Warnings) != 0 {
			t.Errorf("netlink=%v: warnings %q", netlink, tab.Warnings)
		}
	}
	// The root namespace does not see the lab's sockets.
	root, err := List(context.Background(), Options{Port: childAddr.Port()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range root.Sockets {
		if slices.ContainsFunc(s.Processes, func(p Process) bool { return p.PID == child.Process.Pid }) {
			t.Errorf("root namespace lists the lab's socket %v", s)
		}
	}
}

// TestManySockets lists more sockets than fit in one netlink reply buffer,
// so the dump spans several reads.
func TestManySockets(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("many")
	const n = 1000
	want := map[netip.AddrPort]bool{}
	for range n {
		want[h.Listen(t, "tcp", "127.0.0.1:0").Addr().(*net.TCPAddr).AddrPort()] = true
	}
	for _, netlink := range []bool{true, false} {
		var tab Table
		err := h.Do(func() (err error) {
			tab, err = list(context.Background(), Options{}, netlink)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[netip.AddrPort]bool{}
		for _, s := range tab.Sockets {
			got[s.Local] = true
			if len(s.Processes) != 1 || s.Processes[0].PID != os.Getpid() {
				t.Fatalf("netlink=%v: %v owned by %+v", netlink, s, s.Processes)
			}
		}
		if len(got) != n || len(tab.Sockets) != n {
			t.Fatalf("netlink=%v: listed %d sockets (%d distinct), want %d", netlink, len(tab.Sockets), len(got), n)
		}
		for ap := range want {
			if !got[ap] {
				t.Fatalf("netlink=%v: %v missing", netlink, ap)
			}
		}
	}
}

// TestIsLocalInNamespace checks that addresses are those of the calling
// thread's namespace: a's own link address is local to a, b's is not.
func TestIsLocalInNamespace(t *testing.T) {
	netlab.Require(t)
	p := netlab.New(t).Pair()
	a, addrA, addrB := p.Client, p.ClientAddr, p.ServerAddr
	err := a.Do(func() error {
		for addr, want := range map[netip.Addr]bool{addrA: true, addrB: false, netip.MustParseAddr("127.0.0.1"): true} {
			got, err := IsLocal(addr)
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("in a, IsLocal(%v) = %v, want %v", addr, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := IsLocal(addrA); ok || err != nil {
		t.Errorf("in the root namespace, IsLocal(%v) = %v, %v; want false", addrA, ok, err)
	}
}

// TestAcceptsMatchesKernel listens on each kind of address in a namespace
// and checks Accepts, with V6Only as read from the kernel, against real
// connection attempts.
func TestAcceptsMatchesKernel(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("accepts")
	type listener struct {
		network, addr string
		setV6Only     bool // IPV6_V6ONLY as set by the listener
		v6only        bool // as the kernel keeps it
	}
	listeners := []listener{
		{"tcp4", "0.0.0.0:0", false, false}, {"tcp4", "127.0.0.1:0", false, false},
		{"tcp6", "[::]:0", false, false}, {"tcp6", "[::]:0", true, true},
		{"tcp6", "[::1]:0", false, true}, // binding a specific IPv6 address implies V6ONLY
	}
	dsts := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")}
	for _, l := range listeners {
		var port uint16
		err := h.Do(func() error {
			// Set IPV6_V6ONLY either way: Go's default depends on the network.
			lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
				if network != "tcp6" {
					return nil
				}
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, map[bool]int{true: 1}[l.setV6Only])
				})
				return cmp.Or(err, serr)
			}}
			ln, err := lc.Listen(context.Background(), l.network, l.addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			port = uint16(ln.Addr().(*net.TCPAddr).Port)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var s Socket
		err = h.Do(func() error {
			socks, err := Listening(context.Background(), port)
			if len(socks) != 1 {
				return cmp.Or(err, fmt.Errorf("%d sockets on port %d, want 1", len(socks), port))
			}
			s = socks[0]
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.V6Only != l.v6only {
			t.Errorf("%s %s: V6Only = %v, want %v", l.network, l.addr, s.V6Only, l.v6only)
		}
		for _, dst := range dsts {
			to := netip.AddrPortFrom(dst, port)
			var dialErr error
			h.Do(func() error {
				c, err := net.DialTimeout("tcp", to.String(), 5*time.Second)
				if err == nil {
					c.Close()
				}
				dialErr = err
				return nil
			})
			if got := s.Accepts(to); got != (dialErr == nil) {
				t.Errorf("%v (v6only %v) Accepts(%v) = %v, but dial: %v", s.Local, s.V6Only, to, got, dialErr)
			}
		}
	}
}
