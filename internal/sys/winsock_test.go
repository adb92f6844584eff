package sys

import (
	"syscall"
	"testing"
)

func TestErrnoWinsock(t *testing.T) {
	for _, tc := range []struct{ in, want syscall.Errno }{
		{10061, syscall.ECONNREFUSED},
		{10048, syscall.EADDRINUSE},
		{10065, syscall.EHOSTUNREACH},
		{10060, syscall.ETIMEDOUT},
		{syscall.ECONNREFUSED, syscall.ECONNREFUSED}, // this system's own number passes
		{syscall.EPERM, syscall.EPERM},
		{10062, 10062}, // WSAELOOP: not a reachability error, left as it is
	} {
		if got := Errno(tc.in); got != tc.want {
			t.Errorf("Errno(%d) = %d (%v), want %d (%v)", tc.in, got, got, tc.want, tc.want)
		}
	}
}
