package server_test

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/server"
)

func TestParseFault(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want server.Fault
		err  bool
	}{
		{"never-accept", server.Fault{Kind: server.NeverAccept}, false},
		{"accept-close", server.Fault{Kind: server.AcceptClose}, false},
		{"accept-reset", server.Fault{Kind: server.AcceptReset}, false},
		{"stall", server.Fault{Kind: server.Stall}, false},
		{"delay-accept=1.5s", server.Fault{Kind: server.DelayAccept, Delay: 1500 * time.Millisecond}, false},
		{"delay-accept", server.Fault{}, true},
		{"delay-accept=0s", server.Fault{}, true},
		{"delay-accept=-1s", server.Fault{}, true},
		{"delay-accept=11m", server.Fault{}, true},
		{"delay-accept=soon", server.Fault{}, true},
		{"stall=1s", server.Fault{}, true},
		{"refuse", server.Fault{}, true},
		{"", server.Fault{}, true},
	} {
		got, err := server.ParseFault(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseFault(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzParseFault: a fault that parses prints back as itself.
func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"never-accept", "delay-accept=2s", "delay-accept=1h", "stall="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ft, err := server.ParseFault(s)
		if err != nil {
			return
		}
		again, err := server.ParseFault(ft.String())
		if err != nil || again != ft {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, ft, ft.String(), again, err)
		}
	})
}

func TestFaultConfigErrors(t *testing.T) {
	for _, cfg := range []server.Config{
		{Listen: []string{"127.0.0.1:0"}, Fault: server.Fault{Kind: "sleepy"}},
		{Listen: []string{"127.0.0.1:0"}, Fault: server.Fault{Kind: server.Stall, Delay: time.Second}},
		{Listen: []string{"127.0.0.1:0"}, Backlog: -1},
	} {
		_, err := server.Listen(t.Context(), cfg)
		var ce *server.ConfigError
		if !errors.As(err, &ce) || (ce.Field != "fault" && ce.Field != "backlog") {
			t.Errorf("%+v: %v; want a ConfigError on fault or backlog", cfg, err)
		}
	}
}

// readErr is what reading the first byte of c gives.
func readErr(c net.Conn) error {
	_, err := c.Read(make([]byte, 1))
	return err
}

func TestFaultAcceptCloseAndReset(t *testing.T) {
	for _, tc := range []struct {
		kind server.FaultKind
		want error
	}{
		{server.AcceptClose, io.EOF},
		{server.AcceptReset, syscall.ECONNRESET},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			r := start(t, server.Config{Fault: server.Fault{Kind: tc.kind}})
			for range 3 {
				// On loopback a reset can come before connect returns.
				c, err := net.DialTimeout("tcp", r.addr(0), 10*time.Second)
				if err == nil {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					err = readErr(c)
					c.Close()
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("dial and read: %v; want %v", err, tc.want)
				}
			}
			// The server counts a fault just after the close or reset the
			// client has already seen: wait for the count.
			testnet.Eventually(t, 5*time.Second, "3 connections faulted", func() bool {
				return r.srv.Stats().Faulted >= 3
			})
			if st := r.srv.Stats(); st.Faulted != 3 || st.Accepted != 0 {
				t.Errorf("stats %+v; want 3 faulted, none served", st)
			}
		})
	}
}

// never-accept: two connections fill a backlog of 1 (Linux queues
// backlog+1), the third one's SYNs are dropped.
func TestFaultNeverAccept(t *testing.T) {
	r := start(t, server.Config{Fault: server.Fault{Kind: server.NeverAccept}})
	for range 2 {
		dial(t, r.addr(0))
	}
	c, err := net.DialTimeout("tcp", r.addr(0), 300*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatal("a third connection got through a full accept queue")
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("third connection: %v; want a timeout", err)
	}
}

func TestFaultDelayAccept(t *testing.T) {
	const delay = 300 * time.Millisecond
	r := start(t, server.Config{Fault: server.Fault{Kind: server.DelayAccept, Delay: delay}})
	begin := time.Now()
	c := dial(t, r.addr(0)) // the kernel completes the handshake at once
	roundTrip(t, c, "late")
	if took := time.Since(begin); took < delay {
		t.Errorf("echo after %v; want at least the accept delay %v", took, delay)
	}
}

func TestFaultStall(t *testing.T) {
	r := start(t, server.Config{Fault: server.Fault{Kind: server.Stall}})
	c := dial(t, r.addr(0))
	if _, err := c.Write([]byte("hello?")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if err := readErr(c); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read: %v; want nothing (a timeout)", err)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := readErr(c); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after shutdown, read: %v; want the connection closed", err)
	}
}
