package sockets

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
)

// BenchmarkList lists a namespace holding 5,000 listening sockets, with each
// source, and runs `ss -ltnp` on the same namespace for comparison. ss runs
// through `ip netns exec`, whose own cost is the "ip-netns-exec-true" case.
//
//	go test -run '^$' -bench List -benchtime 20x ./sockets
func BenchmarkList(b *testing.B) {
	netlab.Require(b)
	const n = 5000
	h := netlab.New(b).Host("bench")
	for range n {
		h.Listen(b, "tcp", "127.0.0.1:0")
	}
	for _, netlink := range []bool{true, false} {
		name := map[bool]string{true: "netlink", false: "procfs"}[netlink]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				err := h.Do(func() error {
					tab, err := list(context.Background(), Options{}, netlink)
					if err == nil && len(tab.Sockets) != n {
						err = fmt.Errorf("listed %d sockets, want %d", len(tab.Sockets), n)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if _, err := exec.LookPath("ss"); err != nil {
		b.Skip("ss not installed")
	}
	for name, args := range map[string][]string{"ss-ltnp": {"ss", "-ltnp"}, "ip-netns-exec-true": {"true"}} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if out, err := h.Exec(args...); err != nil {
					b.Fatalf("%v: %v\n%s", args, err, out)
				}
			}
		})
	}
}
