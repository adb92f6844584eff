//go:build linux

package netlab_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// peerOf accepts one connection on ln and returns the address it came from.
func peerOf(t *testing.T, ln net.Listener) <-chan netip.Addr {
	t.Helper()
	ch := make(chan netip.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		c.Close()
	}()
	return ch
}

func TestPair(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		make   func(*netlab.Lab) *netlab.Pair
		family netip.Prefix
	}{
		{"v4", (*netlab.Lab).Pair, netip.MustParsePrefix("198.18.0.0/15")},
		{"v6", (*netlab.Lab).PairV6, netip.MustParsePrefix("fd00::/8")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.make(netlab.New(t))
			if !strings.HasSuffix(p.Client.Name(), "-client") || !strings.HasSuffix(p.Server.Name(), "-server") {
				t.Errorf("hosts %s, %s; want ...-client and ...-server", p.Client.Name(), p.Server.Name())
			}
			if !tc.family.Contains(p.ClientAddr) || !tc.family.Contains(p.ServerAddr) || p.ClientAddr == p.ServerAddr {
				t.Fatalf("addresses %v, %v; want two in %v", p.ClientAddr, p.ServerAddr, tc.family)
			}
			ln := p.Server.Listen(t, "tcp", netip.AddrPortFrom(p.ServerAddr, 0).String())
			from := peerOf(t, ln)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := p.Client.DialContext(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatalf("client -> server: %v", err)
			}
			c.Close()
			if got := <-from; got != p.ClientAddr {
				t.Errorf("server saw the connection from %v, want the client's %v", got, p.ClientAddr)
			}
		})
	}
}

// The client reaches the server only through the router, which forwards
// without translating; with forwarding off the path is cut.
func TestRouted(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	r := netlab.New(t).Routed()
	if netip.PrefixFrom(r.ClientAddr, 24).Masked() == netip.PrefixFrom(r.ServerAddr, 24).Masked() {
		t.Fatalf("client %v and server %v share a subnet", r.ClientAddr, r.ServerAddr)
	}
	if out := r.Client.Run(t, "ip", "route", "get", r.ServerAddr.String()); !strings.Contains(out, "via "+r.RouterClientSide.String()) {
		t.Errorf("client's route to the server does not go via the router %v:\n%s", r.RouterClientSide, out)
	}
	ln := r.Server.Listen(t, "tcp", netip.AddrPortFrom(r.ServerAddr, 0).String())
	from := peerOf(t, ln)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := r.Client.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("client -> server through the router: %v", err)
	}
	c.Close()
	if got := <-from; got != r.ClientAddr {
		t.Errorf("server saw %v, want the client's own %v (no NAT)", got, r.ClientAddr)
	}

	r.Router.Sysctl(t, "net.ipv4.ip_forward", "0")
	ctx, cancel = context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if c, err := r.Client.DialContext(ctx, "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("client reached the server with forwarding off in the router")
	}
}

// A host deleted mid-test takes its processes and its end of every link
// with it; the peer is left with no route to it.
func TestDeleteHost(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	p := netlab.New(t).Pair()
	srv := p.Server.Serve(t, "gone", netip.AddrPortFrom(p.ServerAddr, 80))
	name := p.Server.Name()
	p.Server.Delete(t)
	if out := p.Client.Run(t, "ip", "-o", "link"); strings.Contains(out, "veth0") {
		t.Errorf("the client still has its end of the link:\n%s", out)
	}
	if _, err := os.Stat("/run/netns/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still there: %v", name, err)
	}
	if err := syscall.Kill(srv.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("server pid %d still alive (kill -0: %v)", srv.Pid, err)
	}
	if got := outcome(t, p.Client, netip.AddrPortFrom(p.ServerAddr, 80)); !strings.Contains(got, "network is unreachable") {
		t.Errorf("dial the deleted host: %s, want network is unreachable", got)
	}
}
