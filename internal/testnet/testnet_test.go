package testnet_test

import (
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
)

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestClosedPortRefuses(t *testing.T) {
	ap := testnet.ClosedPort(t)
	if !ap.Addr().IsLoopback() || ap.Port() == 0 {
		t.Fatalf("ClosedPort = %v, want a loopback port", ap)
	}
	_, err := net.DialTimeout("tcp", ap.String(), 5*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %v: %v, want ECONNREFUSED", ap, err)
	}
}

func TestListenQueuesWithoutAccepting(t *testing.T) {
	ln := testnet.Listen(t)
	c := dial(t, ln.Addr().String()) // the kernel completes the handshake
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.EAGAIN) && !isTimeout(err) {
		t.Fatalf("read from a listener that never accepts: %v, want a timeout", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestHandlers(t *testing.T) {
	t.Run("echo", func(t *testing.T) {
		c := dial(t, testnet.Serve(t, testnet.Echo).String())
		io.WriteString(c, "hello")
		c.(*net.TCPConn).CloseWrite()
		if got, err := io.ReadAll(c); string(got) != "hello" || err != nil {
			t.Fatalf("echo: %q, %v", got, err)
		}
	})
	t.Run("drain", func(t *testing.T) {
		c := dial(t, testnet.Serve(t, testnet.Drain).String())
		io.WriteString(c, strings.Repeat("x", 1<<20))
		c.(*net.TCPConn).CloseWrite()
		if got, err := io.ReadAll(c); len(got) != 0 || err != nil {
			t.Fatalf("drain answered %d bytes, %v; want EOF after our close", len(got), err)
		}
	})
	t.Run("hang-up", func(t *testing.T) {
		c := dial(t, testnet.Serve(t, testnet.HangUp).String())
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("read %d, %v; want EOF", n, err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		// The reset may beat the end of connect, which then reports it.
		c, err := net.DialTimeout("tcp", testnet.Serve(t, testnet.Reset).String(), 5*time.Second)
		if err == nil {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial and read: %v, want ECONNRESET", err)
		}
	})
}

// A nil handler holds the connection open until the test ends; then the
// client reads EOF and the server's goroutines are gone.
func TestServeHoldsUntilTestEnds(t *testing.T) {
	before := runtime.NumGoroutine()
	var c net.Conn
	t.Run("held", func(t *testing.T) {
		ln := testnet.Listen(t)
		testnet.ServeOn(t, ln, nil)
		c2, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c = c2
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("read from a held connection: %v, want a timeout", err)
		}
	})
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("after the test: read %d, %v; want the connection closed", n, err)
	}
	testnet.Eventually(t, 5*time.Second, "the server's goroutines end", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// fakeT records a failure and ends the goroutine as testing.T does.
type fakeT struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = strings.TrimSpace(format)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestEventually(t *testing.T) {
	calls := 0
	testnet.Eventually(t, 5*time.Second, "third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}

	f := &fakeT{TB: t}
	calls = 0
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		testnet.Eventually(f, 200*time.Millisecond, "never", func() bool { calls++; return false })
	}()
	<-done
	took := time.Since(start)
	if f.failed == "" {
		t.Fatal("Eventually returned for a condition that never held")
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v, want about 200ms", took)
	}
	// 5 ms doubling to 100 ms: 5+10+20+40+80 = 155 ms, then 100 ms pauses.
	if calls < 4 || calls > 10 {
		t.Errorf("cond called %d times in 200ms, want 4 to 10", calls)
	}
}

func TestPoll(t *testing.T) {
	calls := 0
	if !testnet.Poll(5*time.Second, func() bool { calls++; return calls == 2 }) || calls != 2 {
		t.Errorf("Poll of a condition true at the second call: %d calls", calls)
	}
	start := time.Now()
	if testnet.Poll(50*time.Millisecond, func() bool { return false }) {
		t.Error("Poll reported a condition that never held")
	}
	if took := time.Since(start); took < 50*time.Millisecond || took > time.Second {
		t.Errorf("gave up after %v, want about 50ms", took)
	}
}
