package sys_test

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/sys"
)

func TestRouteGet(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	p := netlab.New(t).Pair()
	a, aAddr, bAddr := p.Client, p.ClientAddr, p.ServerAddr
	a.AddRoute(t, "unreachable", "198.19.7.0/24")
	a.AddRoute(t, "blackhole", "198.19.8.0/24")
	tests := []struct {
		dst      string
		typ      string
		errno    syscall.Errno
		prefix   string
		src      netip.Addr
		wantIfOK bool
	}{
		{dst: "127.0.0.1", typ: "local", prefix: "127.0.0.1/32", src: netip.MustParseAddr("127.0.0.1"), wantIfOK: true},
		{dst: bAddr.String(), typ: "unicast", prefix: netip.PrefixFrom(bAddr, 24).Masked().String(), src: aAddr, wantIfOK: true},
		{dst: "198.19.7.1", typ: "unreachable", errno: syscall.EHOSTUNREACH, prefix: "198.19.7.0/24"},
		{dst: "198.19.8.1", typ: "blackhole", errno: syscall.EINVAL, prefix: "198.19.8.0/24"},
		{dst: "198.19.9.1", errno: syscall.ENETUNREACH},
	}
	for _, tt := range tests {
		var r sys.Route
		var err error
		if derr := a.Do(func() error {
			r, err = sys.RouteGet(context.Background(), netip.MustParseAddr(tt.dst))
			return nil
		}); derr != nil {
			t.Fatal(derr)
		}
		if tt.errno != 0 {
			if !errors.Is(err, tt.errno) {
				t.Errorf("route %s: err %v, want %v", tt.dst, err, tt.errno)
			}
		} else if err != nil {
			t.Errorf("route %s: %v", tt.dst, err)
		}
		if tt.typ != "" && r.Type != tt.typ {
			t.Errorf("route %s: type %q, want %q (%+v)", tt.dst, r.Type, tt.typ, r)
		}
		if tt.prefix != "" && r.Prefix.String() != tt.prefix {
			t.Errorf("route %s: prefix %v, want %s", tt.dst, r.Prefix, tt.prefix)
		}
		if tt.src.IsValid() && r.Src != tt.src {
			t.Errorf("route %s: src %v, want %v", tt.dst, r.Src, tt.src)
		}
		if tt.wantIfOK && r.IfIndex == 0 {
			t.Errorf("route %s: no outgoing interface", tt.dst)
		}
	}
}
