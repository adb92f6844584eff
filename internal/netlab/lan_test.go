package netlab_test

import (
	"context"
	"io"
	"net"
	"net/netip"
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
