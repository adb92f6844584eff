package sockets

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

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

// BenchmarkListAllNamespaces lists every namespace of the host while a lab
// holds 50 more, each with 100 listeners (owned by this process). The target
// is under 200 ms an op. Other namespaces and processes on the machine are
// listed too, so the number depends on the host; cpu-ms/op (user + system
// time of this process) depends less on what else the machine is doing.
//
//	go test -run '^$' -bench ListAllNamespaces -benchtime 10x ./sockets
func BenchmarkListAllNamespaces(b *testing.B) {
	netlab.Require(b)
	const namespaces, listeners = 50, 100
	lab := netlab.New(b)
	names := map[string]bool{}
	for i := range namespaces {
		h := lab.Host(fmt.Sprintf("n%d", i))
		names[h.Name()] = true
		for range listeners {
			h.Listen(b, "tcp", "127.0.0.1:0")
		}
	}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for b.Loop() {
		tab, err := ListAllNamespaces(context.Background(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, s := range tab.Sockets {
			if names[s.Namespace.Name] && len(s.Processes) == 1 {
				n++
			}
		}
		if n != namespaces*listeners {
			b.Fatalf("listed %d owned sockets in the lab's namespaces, want %d", n, namespaces*listeners)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
