package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/server"
)

// recorder is a slog.Handler that keeps every record, so tests can wait for
// an event instead of sleeping.
type recorder struct {
	mu      sync.Mutex
	recs    []slog.Record
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// records returns the records with message msg.
func (r *recorder) records(msg string) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.recs {
		if rec.Message == msg {
			out = append(out, rec)
		}
	}
	return out
}

// wait returns once n records with message msg are logged, or fails the test.
func (r *recorder) wait(t *testing.T, msg string, n int) []slog.Record {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		if recs := r.records(msg); len(recs) >= n {
			return recs
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d %q log records; have %d", n, msg, len(r.records(msg)))
		}
	}
}

func attr(rec slog.Record, key string) slog.Value {
	var v slog.Value
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// running is a server serving in the background.
type running struct {
	srv    *server.Server
	log    *recorder
	cancel context.CancelFunc
	done   chan error
}

// start listens with cfg (127.0.0.1:0 when cfg.Listen is empty) and serves
// until the test ends or stop is called.
func start(t *testing.T, cfg server.Config) *running {
	t.Helper()
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	rec := newRecorder()
	cfg.Logger = slog.New(rec)
	srv, err := server.Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, log: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			rec.mu.Lock()
			for _, rr := range rec.recs {
				var b strings.Builder
				rr.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
				t.Logf("log: %s %s%s", rr.Time.Format("15:04:05.000"), rr.Message, b.String())
			}
			rec.mu.Unlock()
		}
	})
	return r
}

// stop cancels Serve and waits for it to return.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
		return nil
	}
}

func (r *running) addr(i int) string { return r.srv.Addrs()[i].String() }

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// roundTrip sends msg and reads back as many bytes.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: got %q, %v", msg, got, err)
	}
}

func TestModes(t *testing.T) {
	tests := []struct {
		name    string
		cfg     server.Config
		send    string
		want    string
		in, out uint64
		closeW  bool // half-close after sending
	}{
		{name: "echo", cfg: server.Config{}, send: "hello\n", want: "hello\n", in: 6, out: 6, closeW: true},
		{name: "echo-explicit", cfg: server.Config{Mode: server.ModeEcho}, send: strings.Repeat("x", 100_000), want: strings.Repeat("x", 100_000), in: 100_000, out: 100_000, closeW: true},
		{name: "discard", cfg: server.Config{Mode: server.ModeDiscard}, send: "hello\n", want: "", in: 6, closeW: true},
		{name: "banner", cfg: server.Config{Mode: server.ModeBanner, Banner: "hi there\n"}, want: "hi there\n", out: 9},
		// A client that talks first still gets the banner and a clean close, not a reset.
		{name: "banner-client-talks", cfg: server.Config{Mode: server.ModeBanner, Banner: "hi\n"}, send: "junk", want: "hi\n", in: 4, out: 3, closeW: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, tt.cfg)
			c := dial(t, r.addr(0))
			go func() {
				// concurrently: a large echo blocks the writer until we read
				io.WriteString(c, tt.send)
				if tt.closeW {
					c.CloseWrite()
				}
			}()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != tt.want {
				t.Fatalf("read %d bytes %.40q, %v; want %d bytes %.40q", len(got), got, err, len(tt.want), tt.want)
			}
			if !tt.closeW {
				c.CloseWrite()
			}
			rec := r.log.wait(t, "connection closed", 1)[0]
			if acc := r.log.records("connection accepted"); len(acc) != 1 || attr(acc[0], "remote").String() != c.LocalAddr().String() {
				t.Errorf("debug log of the accept: %v", acc)
			}
			if in, out := attr(rec, "bytes_in").Uint64(), attr(rec, "bytes_out").Uint64(); in != tt.in || out != tt.out {
				t.Errorf("log says bytes in/out %d/%d, want %d/%d", in, out, tt.in, tt.out)
			}
			if end := attr(rec, "end").String(); end != "client-closed" {
				t.Errorf("end = %q, want client-closed", end)
			}
			if attr(rec, "remote").String() != c.LocalAddr().String() {
				t.Errorf("remote = %v, want %v", attr(rec, "remote"), c.LocalAddr())
			}
			st := r.srv.Stats()
			if st.Accepted != 1 || st.BytesIn != tt.in || st.BytesOut != tt.out || st.Active != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestSeveralListeners(t *testing.T) {
	listen := []string{"127.0.0.1:0", "127.0.0.1:0"}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		listen = append(listen, "[::1]:0")
	}
	r := start(t, server.Config{Listen: listen})
	addrs := r.srv.Addrs()
	if len(addrs) != len(listen) {
		t.Fatalf("Addrs() = %v for %v", addrs, listen)
	}
	for i, a := range addrs {
		if a.Port() == 0 {
			t.Fatalf("Addrs()[%d] = %v: port not read back", i, a)
		}
		roundTrip(t, dial(t, a.String()), "to "+a.String())
	}
	if n := len(r.log.records("listening")); n != len(listen) {
		t.Errorf("%d listening log records, want %d", n, len(listen))
	}
}

func TestDrainTimeout(t *testing.T) {
	r := start(t, server.Config{Drain: 50 * time.Millisecond})
	c := dial(t, r.addr(0))
	roundTrip(t, c, "x")
	if err := r.stop(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after forced close: %v, want EOF", err)
	}
	rec := r.log.wait(t, "connection closed", 1)[0]
	if end := attr(rec, "end").String(); end != "shutdown" {
		t.Errorf("end = %q, want shutdown", end)
	}
	if closed := r.log.wait(t, "drain time over: closed open connections", 1)[0]; attr(closed, "closed").Int64() != 1 {
		t.Errorf("closed = %v, want 1", attr(closed, "closed"))
	}
}

func TestMaxConns(t *testing.T) {
	r := start(t, server.Config{MaxConns: 1})
	a := dial(t, r.addr(0))
	roundTrip(t, a, "first") // a is being served

	b := dial(t, r.addr(0))
	got, err := io.ReadAll(b)
	if err != nil || !strings.HasPrefix(string(got), "busy: this server serves at most 1 connections") {
		t.Fatalf("over the limit: read %q, %v", got, err)
	}
	rej := r.log.wait(t, "connection rejected: over max conns", 1)[0]
	if attr(rej, "remote").String() != b.LocalAddr().String() {
		t.Errorf("rejected remote %v, want %v", attr(rej, "remote"), b.LocalAddr())
	}
	if st := r.srv.Stats(); st.Rejected != 1 || st.Active != 1 || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}

	a.Close()
	r.log.wait(t, "connection closed", 1)
	roundTrip(t, dial(t, r.addr(0)), "room again")
}

// Under a flood the server lingers on at most 64 turned-away clients (so
// each reads the busy line); the next is closed at once without it, and
// everything is still counted as rejected.
func TestMaxConnsFlood(t *testing.T) {
	r := start(t, server.Config{MaxConns: 1})
	roundTrip(t, dial(t, r.addr(0)), "served")

	// 64 clients that neither read nor close: each keeps its rejection
	// lingering for up to a second.
	for range 64 {
		dial(t, r.addr(0))
	}
	r.log.wait(t, "connection rejected: over max conns", 64)
	extra := dial(t, r.addr(0))
	got, _ := io.ReadAll(extra) // EOF or a reset; either way no busy line
	if strings.Contains(string(got), "busy") {
		t.Fatalf("65th turned-away client read %q, want the connection closed without the message", got)
	}
	r.log.wait(t, "connection rejected: over max conns, too many already being turned away; closed without a message", 1)
	if st := r.srv.Stats(); st.Rejected != 65 || st.Accepted != 1 {
		t.Errorf("stats %+v, want 65 rejected and 1 accepted", st)
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = time.Second
	r := start(t, server.Config{IdleTimeout: idle})

	// A client that keeps talking is never cut off, though it outlives the timeout.
	busy := dial(t, r.addr(0))
	for range 15 {
		roundTrip(t, busy, "ping")
		time.Sleep(idle / 10)
	}
	busy.Close()
	if end := attr(r.log.wait(t, "connection closed", 1)[0], "end").String(); end != "client-closed" {
		t.Fatalf("talking client: end = %q, want client-closed", end)
	}

	silent := dial(t, r.addr(0))
	began := time.Now()
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client: %v, want EOF from the server", err)
	}
	if d := time.Since(began); d < idle*9/10 {
		t.Errorf("closed after %v, before the idle timeout %v", d, idle)
	}
	rec := r.log.wait(t, "connection closed", 2)[1]
	if end := attr(rec, "end").String(); end != "idle-timeout" {
		t.Errorf("end = %q, want idle-timeout", end)
	}
}

func TestNotLocal(t *testing.T) {
	// 198.18.255.1 is on no interface of this host: bind fails locally, nothing is sent.
	_, err := server.Listen(context.Background(), server.Config{Listen: []string{"198.18.255.1:7707"}})
	var be *server.BindError
	if !errors.As(err, &be) || be.Cause != server.CauseNotLocal || !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("Listen = %v, want a BindError with cause not-local", err)
	}
	hasLoopback := false
	for _, p := range be.HostAddrs {
		hasLoopback = hasLoopback || p.Addr().String() == "127.0.0.1"
	}
	if !hasLoopback || !strings.Contains(be.Error(), "127.0.0.1") || !strings.Contains(be.Error(), "198.18.255.1 is not an address of this host") {
		t.Errorf("message %q / addresses %v: want this host's addresses listed", be.Error(), be.HostAddrs)
	}
	if fix := strings.Join(be.Fix(), "\n"); !strings.Contains(fix, "0.0.0.0") || !strings.Contains(fix, "ip_nonlocal_bind") {
		t.Errorf("fix %q", fix)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   server.Config
		field string
		msg   string // the whole message, where pinned
	}{
		{"no address", server.Config{}, "listen address", "listen address: none given; give at least one address to listen on, e.g. 127.0.0.1:7000"},
		{"bare port", server.Config{Listen: []string{"7000"}}, "listen address", ""},
		{"no port", server.Config{Listen: []string{"127.0.0.1"}}, "listen address", ""},
		{"empty port", server.Config{Listen: []string{"127.0.0.1:"}}, "listen address", ""},
		{"port range", server.Config{Listen: []string{"127.0.0.1:70000"}}, "listen address", ""},
		{"port name", server.Config{Listen: []string{"127.0.0.1:http"}}, "listen address", ""},
		{"v6 unbracketed", server.Config{Listen: []string{"::1:7000"}}, "listen address", ""},
		{"twice", server.Config{Listen: []string{":7000", ":7000"}}, "listen address", ""},
		{"bad mode", server.Config{Listen: []string{":0"}, Mode: "chargen"}, "mode", ""},
		{"banner without text", server.Config{Listen: []string{":0"}, Mode: server.ModeBanner}, "banner", `banner: mode "banner" needs one: the text to send to each client`},
		{"text without banner", server.Config{Listen: []string{":0"}, Banner: "hi"}, "banner", `banner "hi": only sent in mode "banner", not "echo"; drop the banner, or use mode "banner"`},
		{"text in discard", server.Config{Listen: []string{":0"}, Mode: server.ModeDiscard, Banner: "hi"}, "banner", `banner "hi": only sent in mode "banner", not "discard"; drop the banner, or use mode "banner"`},
		{"negative max", server.Config{Listen: []string{":0"}, MaxConns: -1}, "max conns", ""},
		{"negative idle", server.Config{Listen: []string{":0"}, IdleTimeout: -1}, "idle timeout", ""},
		{"negative drain", server.Config{Listen: []string{":0"}, Drain: -1}, "drain", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := server.Listen(context.Background(), tt.cfg)
			var ce *server.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				if srv != nil {
					srv.Close()
				}
				t.Fatalf("Listen = %v, want a ConfigError on %q", err, tt.field)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message %q, want %q", err, tt.msg)
			}
		})
	}
}

func TestCloseWithoutServe(t *testing.T) {
	srv, err := server.Listen(context.Background(), server.Config{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addrs()[0].String()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Close: %v, want refused", err)
	}
	if err := srv.Serve(context.Background()); err == nil {
		t.Fatal("Serve after Close returned nil")
	}
}
