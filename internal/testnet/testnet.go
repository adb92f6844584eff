// Package testnet gives tests real TCP sockets on loopback: a listener
// (Listen), a port that refuses because it was listened on and closed
// (ClosedPort), servers that echo, drain, hang up or reset each connection
// (Serve with Echo, Drain, HangUp, Reset), and Eventually and Poll, bounded
// in time and in count, to wait for what those sockets make happen.
// Everything is closed when the test ends. ServeOn serves on a listener made
// elsewhere, such as one inside a netlab host.
//
// Only _test files import testnet (internal/archtest fails otherwise).
package testnet

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Listen listens on an IPv4 loopback port the kernel picks and closes the
// listener when the test ends. It accepts nothing: connections wait in its
// queue (give it to Serve to answer them).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	return ListenOn(t, "tcp", "127.0.0.1:0")
}

// ListenOn is Listen on another network and address, such as "tcp6" and
// "[::1]:0", or "tcp" and "127.0.0.3:0". On a host without IPv6 it skips
// the test, as the net package's own tests do, unless CI is set: CI fails.
func ListenOn(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		if noIPv6(network, addr, err) && os.Getenv("CI") == "" {
			t.Skipf("testnet: no IPv6 here (%v); skipped as CI is not set", err)
		}
		t.Fatalf("testnet: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// noIPv6 tells a host without IPv6 (off, or ::1 absent) from other
// failures to listen.
func noIPv6(network, addr string, err error) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip, _ := netip.ParseAddr(host)
	return (network == "tcp6" || ip.Is6()) &&
		(errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL))
}

// AddrPort returns the address ln listens on, an IPv4-mapped address unmapped.
func AddrPort(ln net.Listener) netip.AddrPort {
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// ClosedPort returns an IPv4 loopback address that refuses connections: the
// test listened on it and closed it (never a guessed port, which may be in
// use).
func ClosedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	return ClosedPortOn(t, "tcp", "127.0.0.1:0")
}

// ClosedPortOn is ClosedPort on another network and address (see ListenOn).
func ClosedPortOn(t testing.TB, network, addr string) netip.AddrPort {
	t.Helper()
	return Closed(ListenOn(t, network, addr))
}

// Closed closes ln and returns the address it listened on, where nothing
// listens now: ClosedPort for a listener made elsewhere, such as in a
// netlab host.
func Closed(ln net.Listener) netip.AddrPort {
	ap := AddrPort(ln)
	ln.Close()
	return ap
}

// Echo, a handler for Serve, writes back what it reads until the client
// closes its side.
func Echo(c net.Conn) { io.Copy(c, c) }

// Drain, a handler for Serve, reads until the client closes, so the client
// closes first: an open server that never speaks.
func Drain(c net.Conn) { io.Copy(io.Discard, c) }

// HangUp, a handler for Serve, closes at once after the handshake: the
// client reads EOF.
func HangUp(net.Conn) {}

// Reset, a handler for Serve, aborts at once after the handshake (SO_LINGER
// 0): the client gets an RST, and no TIME_WAIT is left behind.
func Reset(c net.Conn) { c.(*net.TCPConn).SetLinger(0) }

// Serve is ServeOn on a new IPv4 loopback listener (Listen).
func Serve(t testing.TB, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	return ServeOn(t, Listen(t), handle)
}

// ServeOn accepts on ln until the test ends and runs handle on each connection
// in a goroutine of its own, closing the connection when handle returns. A
// nil handle holds every connection open, unread, until the test ends. When
// the test ends ServeOn closes ln and the connections still open, and waits for
// its goroutines. It returns ln's address.
func ServeOn(t testing.TB, ln net.Listener, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	s := &server{ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		if !s.stop(10 * time.Second) {
			t.Errorf("testnet: a handler on %v still runs 10s after the test ended", ln.Addr())
		}
	})
	s.wg.Go(func() { s.accept(handle) })
	return AddrPort(ln)
}

type server struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	conns   map[net.Conn]bool
}

func (s *server) accept(handle func(net.Conn)) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		if handle == nil {
			continue // held until stop
		}
		s.wg.Go(func() {
			defer s.close(c)
			handle(c)
		})
	}
}

func (s *server) close(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// stop closes the listener and every open connection, and waits up to
// limit for the goroutines; it reports whether they all ended.
func (s *server) stop(limit time.Duration) bool {
	s.mu.Lock()
	s.stopped = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

// Eventually calls cond until it returns true, and fails the test, saying
// what was waited for, when it has not within the given time (see Poll).
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if calls, ok := poll(within, cond); !ok {
		t.Fatalf("testnet: %s: not so after %v (%d polls)", what, within, calls)
	}
}

// Poll calls cond until it returns true or the time is up, and reports
// whether it did: for a test that says more than Eventually when it fails.
// It polls at growing intervals (5 ms doubling to 100 ms), so it also stops
// after a bounded number of calls.
func Poll(within time.Duration, cond func() bool) bool {
	_, ok := poll(within, cond)
	return ok
}

func poll(within time.Duration, cond func() bool) (calls int, ok bool) {
	const first, most = 5 * time.Millisecond, 100 * time.Millisecond
	deadline := time.Now().Add(within)
	maxCalls := int(within/first) + 2
	pause := first
	for calls = 1; ; calls++ {
		if cond() {
			return calls, true
		}
		if calls >= maxCalls || !time.Now().Before(deadline) {
			return calls, false
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, most)
	}
}

// Buffer is a bytes.Buffer a writer on another goroutine (a logger, a
// child process's output) and the test can share.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
