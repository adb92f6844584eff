package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/server"
)

// The echo server against a plain goroutine-per-connection stdlib echo
// server, on loopback: connections per second (dial, one byte there and
// back, close) and round trips per second on open connections. Ours does
// its logging (text, discarded), limits and idle timeout meanwhile.
//
//	go test -run NONE -bench . -count 5 ./server/

// cpuTime is the CPU time this process has used, user and system: on a
// loaded machine CPU per operation is steadier than operations per second.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// plainEcho is the baseline: accept, and per connection read and write back.
func plainEcho(b *testing.B) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}

func reachEcho(b *testing.B) (addr string, stop func()) {
	srv, err := server.Listen(context.Background(), server.Config{
		Listen: []string{"127.0.0.1:0"}, MaxConns: 10_000, IdleTimeout: time.Minute, Drain: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return srv.Addrs()[0].String(), func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

var servers = []struct {
	name  string
	start func(*testing.B) (string, func())
}{{"stdlib", plainEcho}, {"reach", reachEcho}}

func BenchmarkConnections(b *testing.B) {
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			addr, stop := s.start(b)
			defer stop()
			cpu := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				buf := []byte{'x'}
				for pb.Next() {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					_, err = c.Write(buf)
					if err == nil {
						_, err = io.ReadFull(c, buf)
					}
					c.Close()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

func BenchmarkRoundTrips(b *testing.B) {
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			addr, stop := s.start(b)
			defer stop()
			b.SetBytes(64)
			cpu := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				msg, buf := make([]byte, 64), make([]byte, 64)
				for pb.Next() {
					if _, err := c.Write(msg); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
