package netlab_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// Every host of a LAN reaches every other on its one address, and the LAN
// is no path to hosts outside it.
func TestLAN(t *testing.T) {
	lab := netlab.New(t)
	hosts := []*netlab.Host{lab.Host("a"), lab.Host("b"), lab.Host("c"), lab.Host("d")}
	addrs := lab.LAN(hosts...)
	if len(addrs) != 4 || addrs[0].Next() != addrs[1] {
		t.Fatalf("addresses %v, want four consecutive ones", addrs)
	}
	for i, h := range hosts {
		ln := h.Listen(t, "tcp", netip.AddrPortFrom(addrs[i], 0).String())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, h.Name())
				c.Close()
			}
		}()
		for j, from := range hosts {
			if i == j {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := from.DialContext(ctx, "tcp", ln.Addr().String())
			cancel()
			if err != nil {
				t.Fatalf("host %d -> host %d (%v): %v", j, i, ln.Addr(), err)
			}
			got, _ := io.ReadAll(c)
			c.Close()
			if string(got) != h.Name() {
				t.Errorf("host %d -> %v answered by %q, want %q", j, ln.Addr(), got, h.Name())
			}
		}
	}
	// Another host, linked only to a, is not reachable from b.
	e := lab.Host("e")
	_, eAddr := lab.Link(hosts[0], e)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := hosts[1].DialContext(ctx, "tcp", netip.AddrPortFrom(eAddr, 22).String()); err == nil {
		c.Close()
		t.Errorf("b reached e through the LAN")
	} else if _, ok := err.(*net.OpError); !ok {
		t.Errorf("b -> e: %v", err)
	}
	if extra := hosts[2].AddAddr(t, addrs[0]); extra != addrs[3].Next() {
		t.Errorf("AddAddr on the LAN gave %v, want %v", extra, addrs[3].Next())
	}
}

// An IPv6 LAN: every host reaches every other over neighbour discovery on
// the bridge, and an address no host holds gets no answer.
func TestLANV6(t *testing.T) {
	lab := netlab.New(t)
	hosts := []*netlab.Host{lab.Host("a"), lab.Host("b"), lab.Host("c")}
	addrs := lab.LANWith(netlab.LANOptions{IPv6: true}, hosts...)
	if len(addrs) != 3 || !addrs[0].Is6() || !netip.MustParsePrefix("fd00::/8").Contains(addrs[0]) || addrs[0].Next() != addrs[1] {
		t.Fatalf("addresses %v, want three consecutive ones in fd00::/8", addrs)
	}
	for i, h := range hosts {
		ln := h.Listen(t, "tcp6", netip.AddrPortFrom(addrs[i], 0).String())
		go acceptAndClose(ln)
		for j, from := range hosts {
			if i == j {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := from.DialContext(ctx, "tcp6", ln.Addr().String())
			cancel()
			if err != nil {
				t.Fatalf("host %d -> host %d (%v): %v", j, i, ln.Addr(), err)
			}
			c.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dead := netip.AddrPortFrom(lab.Unowned(t, addrs[0]), 22)
	if c, err := hosts[0].DialContext(ctx, "tcp6", dead.String()); err == nil {
		c.Close()
		t.Fatalf("connected to %v, which no host holds", dead)
	} else if !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("dial %v, which no host holds: %v, want EHOSTUNREACH (no ND answer)", dead, err)
	}
}

// A host with a delay answers late, by at least the delay, on both
// families; the others on the same LAN answer at once. Deleting the delayed
// host takes its delay line and bridge port with it.
func TestLANDelay(t *testing.T) {
	const d = 300 * time.Millisecond
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			lab := netlab.New(t)
			c, fast, slow := lab.Host("c"), lab.Host("fast"), lab.Host("slow")
			addrs := lab.LANWith(netlab.LANOptions{IPv6: v6, Delay: map[*netlab.Host]time.Duration{slow: d}}, c, fast, slow)
			// dial times one connection from c; the first to a host
			// also waits for its ARP/ND answer, which is delayed too.
			dial := func(h *netlab.Host, addr netip.Addr) time.Duration {
				ln := h.Listen(t, "tcp", netip.AddrPortFrom(addr, 0).String())
				go acceptAndClose(ln)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				start := time.Now()
				conn, err := c.DialContext(ctx, "tcp", ln.Addr().String())
				took := time.Since(start)
				if err != nil {
					t.Fatalf("dial %v: %v", ln.Addr(), err)
				}
				conn.Close()
				return took
			}
			first := dial(slow, addrs[2])
			again := dial(slow, addrs[2])
			quick := dial(fast, addrs[1])
			t.Logf("delayed host: first connection %v (its neighbour answer is late too), second %v; other host %v", first, again, quick)
			if first < 2*d || again < d {
				t.Errorf("delayed host answered in %v and %v; want at least %v and %v", first, again, 2*d, d)
			}
			if quick >= again {
				t.Errorf("the host without delay took %v, the delayed one %v", quick, again)
			}
			slow.Delete(t)
			sw := strings.TrimSuffix(c.Name(), "c") + "lan0-sw" // the lab's names: rl-ID-HOST
			if out, err := exec.Command("ip", "-n", sw, "-o", "link", "show", "dev", "p2").CombinedOutput(); err == nil {
				t.Errorf("the delayed host's bridge port outlived it: %s", out)
			}
			if got := dial(fast, addrs[1]); got >= d {
				t.Errorf("after the delayed host went, the other took %v", got)
			}
		})
	}
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
