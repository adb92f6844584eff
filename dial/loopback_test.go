package dial

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// abort closes a dialled connection with a reset, leaving no TIME_WAIT
// behind: 10,000 dials must not eat the ephemeral ports other tests need.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func endpoints(aps ...netip.AddrPort) []endpoint.Endpoint {
	out := make([]endpoint.Endpoint, len(aps))
	for i, ap := range aps {
		out[i] = endpoint.FromAddrPort(ap)
	}
	return out
}

func TestLoopbackFailover(t *testing.T) {
	up := testnet.Serve(t, testnet.Echo)
	down := testnet.ClosedPort(t)
	for _, p := range []Policy{Ordered, Race} {
		t.Run(string(p), func(t *testing.T) {
			var log attemptLog
			d := New(endpoints(down, up), Options{Policy: p, OnAttempt: log.add})
			conn, err := d.DialContext(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := conn.RemoteAddr().(*net.TCPAddr).AddrPort(); got != up {
				t.Errorf("connected to %v, want %v", got, up)
			}
			as := log.get()
			if len(as) != 2 || as[0].Class != probe.Refused || as[0].Addr != down || as[1].Class != probe.Open || as[1].N != 2 {
				t.Errorf("attempts %+v, want refused %v then open", as, down)
			}
			if as[0].Errno == 0 || as[0].RTT <= 0 {
				t.Errorf("refused attempt lacks errno or RTT: %+v", as[0])
			}
			if _, err := conn.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
				t.Errorf("echo: %q, %v", buf, err)
			}
		})
	}
}

func TestResetOnAccept(t *testing.T) {
	resetter := testnet.Serve(t, testnet.Reset)
	closer := testnet.Serve(t, testnet.HangUp)
	up := testnet.Serve(t, testnet.Echo)
	var log attemptLog
	d := New(endpoints(resetter, closer, up), Options{ReadWait: time.Second, OnAttempt: log.add}) // generous: the servers may be slow to accept on a busy host
	conn, err := d.DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	var classes []probe.Class
	for _, a := range log.get() {
		classes = append(classes, a.Class)
	}
	if len(classes) != 3 || classes[0] != probe.Reset || classes[1] != probe.ClosedByPeer || classes[2] != probe.Open {
		t.Errorf("classes %v, want [reset closed-by-peer open]", classes)
	}

	// Without ReadWait the dialer sees only the handshake: the reset shows on
	// the first read, or in the connect itself when it lands that fast.
	conn, err = New(endpoints(resetter), Options{}).DialContext(t.Context())
	if err == nil {
		defer conn.Close()
		_, err = conn.Read(make([]byte, 1))
	}
	if c, _ := probe.Classify(err); c != probe.Reset && c != probe.ClosedByPeer {
		t.Errorf("without ReadWait: %v (%s), want reset", err, c)
	}
}

func TestReadWaitReplaysBanner(t *testing.T) {
	banner := "220 reach ready\r\n"
	up := testnet.Serve(t, func(c net.Conn) {
		c.Write([]byte(banner))
		io.Copy(io.Discard, c)
	})
	conn, err := New(endpoints(up), Options{ReadWait: time.Second}).DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(banner))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != banner {
		t.Errorf("read %q, %v; want the banner the check consumed", buf, err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Errorf("CloseWrite: %v", err)
	}
}

func TestNameResolvesToSeveralAddresses(t *testing.T) {
	up := testnet.ServeOn(t, testnet.ListenOn(t, "tcp", "127.0.0.3:0"), testnet.Echo)
	ln, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), up.Port()).String())
	if err != nil {
		t.Skipf("cannot hold 127.0.0.2:%d to make it refuse: %v", up.Port(), err)
	}
	ln.Close()
	res := loopbackResolver(t, map[string][]netip.Addr{"svc.reach.test": {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}})
	ep := endpoint.Endpoint{Host: "svc.reach.test", Port: up.Port()}
	var log attemptLog
	d := New([]endpoint.Endpoint{ep}, Options{Resolver: res, OnAttempt: log.add})
	conn, err := d.DialContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	as := log.get()
	if len(as) != 2 || as[0].Class != probe.Refused || as[1].Class != probe.Open || as[0].Endpoint != ep || as[1].Addr != up {
		t.Fatalf("attempts %+v, want 127.0.0.2 refused then 127.0.0.3 open, both for %s", as, ep)
	}
	if want := "svc.reach.test:" + strconv.Itoa(int(up.Port())) + " (127.0.0.2:" + strconv.Itoa(int(up.Port())) + ")"; as[0].Label() != want {
		t.Errorf("label %q, want %q", as[0].Label(), want)
	}

	// A name that does not resolve is a dns failure of that endpoint.
	bad := endpoint.Endpoint{Host: "nope.reach.test", Port: 80}
	_, err = New([]endpoint.Endpoint{bad}, Options{Resolver: res}).DialContext(t.Context())
	var de *Error
	if !errors.As(err, &de) || !errors.Is(err, probe.DNS) || len(de.Last) != 1 || de.Last[0].Endpoint != bad {
		t.Errorf("err = %v, want a dns failure of %s", err, bad)
	}
}

// After 10,000 dials, failed and successful, across every policy, the
// goroutine and descriptor counts are back where they started.
func TestNoLeaksAfter10000Dials(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 real dials")
	}
	up := testnet.Serve(t, testnet.Drain)
	up2 := testnet.Serve(t, testnet.Drain)
	down := testnet.ClosedPort(t)
	noEject := Ejection{Consecutive: -1}
	dialers := []*Dialer{
		New(endpoints(down, up), Options{Eject: noEject}),
		New(endpoints(down, up), Options{Policy: Race, Eject: noEject}),
		New(endpoints(up, up2), Options{Policy: Race, AttemptDelay: time.Nanosecond}), // losers connect too
		New(endpoints(up, down), Options{Policy: RoundRobin, Eject: noEject}),
		New(endpoints(down, up), Options{Policy: Random}), // ejection kicks in
		New(endpoints(down), Options{Retries: 1, Backoff: Backoff{Initial: time.Nanosecond}, Eject: noEject}),
		New(endpoints(down, up), Options{HealthInterval: 5 * time.Millisecond, Eject: Ejection{Consecutive: 1, BaseTime: time.Millisecond}}),
	}
	// Let the servers' goroutines settle before the baseline.
	warm, _ := dialers[0].DialContext(t.Context())
	abort(warm)
	baseG, baseFD := settle(t, -1, -1)

	var ok, failed int
	for i := range 10000 {
		conn, err := dialers[i%len(dialers)].DialContext(t.Context())
		if err != nil {
			failed++
			if !errors.Is(err, probe.Refused) {
				t.Fatalf("dial %d: %v", i, err)
			}
			continue
		}
		ok++
		abort(conn)
	}
	for _, d := range dialers {
		d.Close()
	}
	if ok < 5000 || failed < 1000 {
		t.Errorf("%d ok, %d failed: want both kinds of dial", ok, failed)
	}
	g, fd := settle(t, baseG, baseFD)
	if g > baseG || fd > baseFD {
		t.Errorf("after %d ok and %d failed dials: %d goroutines (baseline %d), %d fds (baseline %d)", ok, failed, g, baseG, fd, baseFD)
	}
}

// settle waits (bounded) for the goroutine and fd counts to drop to the
// wanted values (or to stop changing, for the baseline) and returns them.
func settle(t *testing.T, wantG, wantFD int) (int, int) {
	t.Helper()
	var g, fd int
	for range 500 {
		runtime.GC()
		g, fd = runtime.NumGoroutine(), openFDs(t)
		if wantG >= 0 && g <= wantG && fd <= wantFD {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling a count, not synchronising
	}
	return g, fd
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	return len(ents)
}
