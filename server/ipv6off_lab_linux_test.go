package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/server"
)

// Listening on an IPv6 address where IPv6 is switched off says so and how
// to switch it on; it said only that ::1 is not an address of this host.
func TestBindIPv6Disabled(t *testing.T) {
	lab := netlab.New(t)
	h := lab.Host("h")
	h.Sysctl(t, "net.ipv6.conf.all.disable_ipv6", "1")
	h.Sysctl(t, "net.ipv6.conf.lo.disable_ipv6", "1")
	var err error
	if derr := h.Do(func() error {
		_, err = server.Listen(context.Background(), server.Config{Listen: []string{"[::1]:0"}})
		return nil
	}); derr != nil {
		t.Fatal(derr)
	}
	var be *server.BindError
	if !errors.As(err, &be) || be.Cause != server.CauseNotLocal {
		t.Fatalf("Listen([::1]:0) with IPv6 off = %v, want a not-local BindError", err)
	}
	if !strings.Contains(be.Error(), "IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6 = 1)") {
		t.Errorf("message %q does not say IPv6 is disabled", be.Error())
	}
	if fix := strings.Join(be.Fix(), "\n"); !strings.Contains(fix, "sysctl net.ipv6.conf.all.disable_ipv6=0") || !strings.Contains(fix, "127.0.0.1") {
		t.Errorf("fix %q: want an IPv4 address or the sysctl that turns IPv6 on", fix)
	}
}
