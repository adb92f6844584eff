package probe_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// after returns a handler that keeps a connection for d, then closes it, with
// a reset when reset is set (SO_LINGER 0), after sending banner if any.
func after(d time.Duration, banner string, reset bool) func(net.Conn) {
	return func(c net.Conn) {
		if banner != "" {
			c.Write([]byte(banner))
		}
		time.Sleep(d)
		if reset {
			testnet.Reset(c)
		}
	}
}

// A server that accepts and then closes or resets 300 ms later looks open to
// a plain probe and to a short read wait; holding the connection catches it,
// and says when it happened.
func TestHold(t *testing.T) {
	const late = 300 * time.Millisecond
	closer := endpoint.FromAddrPort(testnet.Serve(t, after(late, "", false)))
	resetter := endpoint.FromAddrPort(testnet.Serve(t, after(late, "", true)))
	full := endpoint.FromAddrPort(testnet.Serve(t, after(late, "ERR max clients\r\n", false)))
	keeper := endpoint.FromAddrPort(testnet.Serve(t, testnet.Drain))

	tests := []struct {
		name   string
		ep     endpoint.Endpoint
		opt    probe.Options
		class  probe.Class
		errno  syscall.Errno
		banner string
		// held bounds Result.Held
		heldMin, heldMax time.Duration
	}{
		{"closed later, no hold", closer, probe.Options{}, probe.Open, 0, "", 0, 0},
		{"closed later, short read wait", closer, probe.Options{ReadWait: 50 * time.Millisecond}, probe.Open, 0, "", 0, 0},
		{"closed later", closer, probe.Options{Hold: time.Second}, probe.ClosedByPeer, 0, "", late - 50*time.Millisecond, time.Second},
		{"reset later", resetter, probe.Options{Hold: time.Second}, probe.Reset, syscall.ECONNRESET, "", late - 50*time.Millisecond, time.Second},
		// Data first does not end the hold: the close after it is the news.
		{"banner then closed", full, probe.Options{Hold: time.Second}, probe.ClosedByPeer, 0, "ERR max clients\r\n", late - 50*time.Millisecond, time.Second},
		{"kept", keeper, probe.Options{Hold: 200 * time.Millisecond}, probe.Open, 0, "", 200 * time.Millisecond, time.Second},
		// Timeout bounds the hold with the rest of the attempt.
		{"hold cut by timeout", keeper, probe.Options{Hold: 10 * time.Second, Timeout: 300 * time.Millisecond}, probe.Open, 0, "", 100 * time.Millisecond, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := probe.Run(context.Background(), tt.ep, tt.opt)
			t.Logf("%s held %v in %v: %v", r.Class, r.Held, time.Since(start), r.Err)
			if r.Class != tt.class || r.Errno != tt.errno {
				t.Fatalf("class %s errno %d (%v), want %s errno %d", r.Class, r.Errno, r.Err, tt.class, tt.errno)
			}
			if r.Held < tt.heldMin || r.Held > tt.heldMax {
				t.Errorf("held %v, want %v to %v", r.Held, tt.heldMin, tt.heldMax)
			}
			if string(r.Banner) != tt.banner {
				t.Errorf("banner %q, want %q", r.Banner, tt.banner)
			}
			if tt.class == probe.Open {
				return
			}
			var pe *probe.Error
			if !errors.As(r.Err, &pe) || pe.Op != "hold" || !errors.Is(r.Err, tt.class) {
				t.Fatalf("error %v: want a *probe.Error of op hold and class %s", r.Err, tt.class)
			}
			if tt.errno != 0 && !errors.Is(r.Err, tt.errno) {
				t.Errorf("errors.Is(err, %v) = false for %v", tt.errno, r.Err)
			}
			if held := r.Held.Round(time.Millisecond).String(); !strings.Contains(r.Err.Error(), held+" after it was accepted") {
				t.Errorf("error %q does not say when (%s after it was accepted)", r.Err, held)
			}
		})
	}
}

// Canceling the context ends a hold at once, as canceled: the caller gave
// up, which says nothing of the server.
func TestHoldCanceled(t *testing.T) {
	keeper := endpoint.FromAddrPort(testnet.Serve(t, testnet.Drain))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := probe.Run(ctx, keeper, probe.Options{Hold: 10 * time.Second, Timeout: 20 * time.Second})
	if r.Class != probe.Canceled || time.Since(start) > 5*time.Second {
		t.Fatalf("class %s after %v (%v), want canceled after about 100ms", r.Class, time.Since(start), r.Err)
	}
}

// A connection Dial returns after a hold is the caller's, still open.
func TestHoldDialKeepsConnection(t *testing.T) {
	echo := endpoint.FromAddrPort(testnet.Serve(t, testnet.Echo))
	conn, r := probe.Dial(context.Background(), echo, probe.Options{Hold: 50 * time.Millisecond})
	if conn == nil {
		t.Fatalf("no connection: %v", r.Err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
}
