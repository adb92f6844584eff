package server

import (
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	"github.com/reach-tools/reach/sockets"
)

func TestCheckListenAddr(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:7000", true},
		{":7000", true},
		{"[::1]:0", true},
		{"[fe80::1%eth0]:80", true},
		{"localhost:65535", true},
		{"7000", false},
		{"127.0.0.1", false},
		{"127.0.0.1:", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:-1", false},
		{"127.0.0.1:http", false},
		{"::1:7000", false},
		{"[[::1]]:7000", false},
		{"", false},
		{"127.0.0.1:7000,127.0.0.1:7001", false},
	}
	for _, tt := range tests {
		if err := checkListenAddr(tt.in); (err == nil) != tt.ok {
			t.Errorf("checkListenAddr(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

// FuzzCheckListenAddr checks that what is accepted is something net.Listen
// can parse, with a port in range.
func FuzzCheckListenAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:7000", ":0", "[::1]:65535", "7000", "a:b:c", "[::1", "x:99999", "[%]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkListenAddr(s) != nil {
			return
		}
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			t.Fatalf("accepted %q: %v", s, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
			t.Fatalf("accepted %q with port %q", s, port)
		}
	})
}

func TestConflicting(t *testing.T) {
	sock := func(a string) sockets.Socket { return sockets.Socket{Local: netip.MustParseAddrPort(a)} }
	lo, other, any4, any6 := sock("127.0.0.1:80"), sock("127.0.0.2:80"), sock("0.0.0.0:80"), sock("[::]:80")
	tests := []struct {
		addr  string
		socks []sockets.Socket
		want  []sockets.Socket
	}{
		{"127.0.0.1", []sockets.Socket{lo, other}, []sockets.Socket{lo}},
		{"127.0.0.1", []sockets.Socket{other, any6}, []sockets.Socket{any6}},
		{"0.0.0.0", []sockets.Socket{lo, other}, []sockets.Socket{lo, other}},
		{"127.0.0.3", []sockets.Socket{other}, []sockets.Socket{other}}, // none clashes: keep the evidence
		{"::1", []sockets.Socket{any4}, []sockets.Socket{any4}},
		{"127.0.0.1", nil, nil},
	}
	for _, tt := range tests {
		if got := conflicting(tt.socks, netip.MustParseAddr(tt.addr)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("conflicting(%v, %s) = %v, want %v", tt.socks, tt.addr, got, tt.want)
		}
	}
}
