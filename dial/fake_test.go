package dial

import (
	"context"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
)

// fakeNet is a DialFunc whose endpoints behave as each test says. It records
// when each address was dialled, in the synctest bubble's virtual time.
type fakeNet struct {
	start time.Time
	mu    sync.Mutex
	hosts map[string]behaviour
	calls []fakeCall
}

type fakeCall struct {
	addr string
	at   time.Duration
}

type behaviour func(ctx context.Context) (net.Conn, error)

func newFakeNet() *fakeNet {
	return &fakeNet{start: time.Now(), hosts: map[string]behaviour{}}
}

func (f *fakeNet) set(addr string, b behaviour) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts[addr] = b
}

func (f *fakeNet) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{addr, time.Since(f.start)})
	b := f.hosts[addr]
	f.mu.Unlock()
	if b == nil {
		b = refuse
	}
	return b(ctx)
}

func (f *fakeNet) log() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func sysErr(e syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", e)}
}

func refuse(context.Context) (net.Conn, error) { return nil, sysErr(syscall.ECONNREFUSED) }

// drop never answers, like a firewall DROP rule: the attempt ends with its context.
func drop(ctx context.Context) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
}

// accept connects after rtt.
func accept(rtt time.Duration) behaviour {
	return func(ctx context.Context) (net.Conn, error) {
		t := time.NewTimer(rtt)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
		case <-t.C:
		}
		c1, c2 := net.Pipe()
		c2.Close()
		return c1, nil
	}
}

// timeoutAtDeadline times out as net.Dialer does: at the context's
// deadline, by a timer of its own, which may fire before the context says
// it is done.
func timeoutAtDeadline(ctx context.Context) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		time.Sleep(time.Until(dl))
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	return drop(ctx)
}

func fail(e syscall.Errno) behaviour {
	return func(context.Context) (net.Conn, error) { return nil, sysErr(e) }
}

func eps(t *testing.T, ss ...string) []endpoint.Endpoint {
	t.Helper()
	out, err := endpoint.ParseEndpoints(ss, 0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// attemptLog collects what OnAttempt saw.
type attemptLog struct {
	mu sync.Mutex
	as []Attempt
}

func (l *attemptLog) add(a Attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.as = append(l.as, a)
}

func (l *attemptLog) get() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Attempt(nil), l.as...)
}
