package httpsafe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reach-tools/reach/internal/testnet"
)

// serve runs Serve on a loopback listener until the test ends and returns
// its address.
func serve(t *testing.T, h http.Handler, opt Options) string {
	t.Helper()
	ln := testnet.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, opt) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of its context's end")
		}
	})
	return ln.Addr().String()
}

// readsBody answers after reading the whole body.
var readsBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if TooLarge(w, err) {
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "read %d bytes\n", len(b))
})

// refuses answers 401 without reading the body, as an auth check does.
var refuses = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "unauthorized", http.StatusUnauthorized)
})

func post(path string, length int) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", path, length)
}

// Each slow client is cut, and no sooner than the timeout that applies.
func TestHostileSlowClientsAreCut(t *testing.T) {
	const read, idle, header = 600 * time.Millisecond, 400 * time.Millisecond, 300 * time.Millisecond
	addr := serve(t, readsBody, Options{ReadHeaderTimeout: header, ReadTimeout: read,
		WriteTimeout: 5 * time.Second, IdleTimeout: idle})
	for _, tc := range []struct {
		name, send string
		timeout    time.Duration
		reply      string // a prefix of what the server answers before the cut
	}{
		{"body withheld", post("/x", 100), read, ""},
		{"headers withheld", "POST /x HTTP/1.1\r\nHost: t\r\n", header, ""},
		{"idle keep-alive", "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", idle, "HTTP/1.1 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testnet.Hold(t, netip.Addr{}, addr, tc.send, 10*time.Second)
			t.Logf("%s: cut after %v (timeout %v)", tc.name, h.After.Round(time.Millisecond), tc.timeout)
			if !h.Closed {
				t.Fatalf("not cut within %v; got %q", h.After, h.Reply)
			}
			if h.After < tc.timeout-50*time.Millisecond || h.After > tc.timeout+2*time.Second {
				t.Errorf("cut after %v, want about %v", h.After, tc.timeout)
			}
			if !strings.HasPrefix(h.Reply, tc.reply) {
				t.Errorf("reply %q, want it to start with %q", h.Reply, tc.reply)
			}
		})
	}
}

// A refusal of a request whose body never comes is sent at once, and the
// connection closed: net/http would otherwise wait for the body to drain it.
func TestHostileRefusalWithWithheldBody(t *testing.T) {
	const read = 5 * time.Second
	for _, tc := range []struct {
		name   string
		h      http.Handler
		length int
		status string
	}{
		{"401", refuses, 100, "401"},
		{"405", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
		}), 100, "405"},
		{"200 ignoring the body", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "ok\n")
		}), 100, "200"},
		{"413 declared too large", readsBody, 2 << 20, "413"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, tc.h, Options{ReadTimeout: read, MaxBody: 1 << 20})
			h := testnet.Hold(t, netip.Addr{}, addr, post("/x", tc.length), 10*time.Second)
			t.Logf("%s: answered and closed after %v", tc.name, h.After.Round(time.Millisecond))
			if !strings.HasPrefix(h.Reply, "HTTP/1.1 "+tc.status) {
				t.Fatalf("reply %q, want %s", h.Reply, tc.status)
			}
			if !h.Closed || h.After > read/2 {
				t.Errorf("closed=%v after %v: want the connection closed at once, not at the read timeout (%v)",
					h.Closed, h.After, read)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	addr := serve(t, readsBody, Options{MaxBody: 1000})
	for _, tc := range []struct {
		name    string
		body    io.Reader // a plain io.Reader is sent chunked, without a length
		status  int
		message string
	}{
		{"within", strings.NewReader(strings.Repeat("x", 1000)), 200, "read 1000 bytes"},
		{"declared beyond", strings.NewReader(strings.Repeat("x", 1001)), 413,
			"request body too large: 1001 bytes declared, this server reads at most 1000"},
		{"chunked beyond", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), 413,
			"request body too large: this server reads at most 1000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post("http://"+addr+"/", "text/plain", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.message) {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, b, tc.status, tc.message)
			}
		})
	}
}

// holdConns opens n connections from the loopback address from and
// reports how many the server keeps open (the rest it closes at once).
func holdConns(t *testing.T, addr string, from netip.Addr, n int) (kept []net.Conn) {
	t.Helper()
	for range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// A refused connection is closed at once: the read sees EOF.
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			continue
		}
		kept = append(kept, c)
	}
	return kept
}

func TestConnectionCaps(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	}), Options{MaxConns: 5, MaxConnsPerClient: 3, Registerer: reg})
	a, b, c := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4")
	if kept := holdConns(t, addr, a, 10); len(kept) != 3 {
		t.Errorf("127.0.0.2 kept %d connections of 10, want 3 (the per-client cap)", len(kept))
	}
	if kept := holdConns(t, addr, b, 10); len(kept) != 2 {
		t.Errorf("127.0.0.3 kept %d connections of 10, want 2 (what the total cap of 5 leaves)", len(kept))
	}
	if kept := holdConns(t, addr, c, 1); len(kept) != 0 {
		t.Errorf("127.0.0.4 kept %d connections, want 0 (the total cap is reached)", len(kept))
	}
	refused := func(reason string) float64 {
		return counter(t, reg, "reach_http_connections_refused_total", reason)
	}
	// The server may count a refusal a moment after the client saw it closed.
	testnet.Poll(5*time.Second, func() bool { return refused(refusedPerClient) >= 7 && refused(refusedTotal) >= 9 })
	if got, want := refused(refusedPerClient), 7.0; got != want {
		t.Errorf("refused per client: %v, want %v", got, want)
	}
	if got, want := refused(refusedTotal), 9.0; got != want {
		t.Errorf("refused over the total: %v, want %v", got, want)
	}
}

// counter reads a counter of reg by name and its one label's value; 0 when
// it has no such series.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestCapsFor(t *testing.T) {
	for _, tc := range []struct {
		limit         uint64
		open, reserve int
		want          Caps
	}{
		{128, 12, 512 + 64, Caps{MinConns, 2}},      // reach watch under ulimit -n 128
		{128, 12, 32 + 64, Caps{20, 5}},             // reach agent under ulimit -n 128
		{1024, 10, 32 + 64, Caps{918, 64}},          // the agent under the usual soft limit
		{1 << 20, 20, 512 + 64, Caps{MaxConns, 64}}, // systemd's hard limit
		{0, 0, 0, Caps{MinConns, 2}},
	} {
		if got := CapsFor(tc.limit, tc.open, tc.reserve); got != tc.want {
			t.Errorf("CapsFor(%d, %d, %d) = %+v, want %+v", tc.limit, tc.open, tc.reserve, got, tc.want)
		}
	}
}

func TestOptionsCaps(t *testing.T) {
	derived := CapsFromLimit(DefaultReserve)
	for _, tc := range []struct {
		opt  Options
		want Caps
	}{
		{Options{}, derived},
		{Options{MaxConns: 10}, Caps{10, min(derived.PerClient, 10)}},
		{Options{MaxConns: 10, MaxConnsPerClient: 20}, Caps{10, 10}},
		{Options{MaxConns: 10, MaxConnsPerClient: 3}, Caps{10, 3}},
	} {
		if got := tc.opt.Caps(); got != tc.want {
			t.Errorf("%+v.Caps() = %+v, want %+v", tc.opt, got, tc.want)
		}
	}
	if _, err := (Options{ReadTimeout: -1}).withDefaults(); !errors.Is(err, ErrOption) {
		t.Errorf("a negative ReadTimeout: %v, want ErrOption", err)
	}
}

func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"s3cret-token", "s3cret-token", true},
		{"s3cret-token", "s3cret-tokex", false},
		{"s3cret", "s3cret-token", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("Equal(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

// A body read to its declared length keeps the connection for the next
// request, even when the reader stopped before EOF (a JSON decoder does):
// agents post a batch every few seconds on one connection.
func TestKeepAliveAfterFullBody(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]int
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, v["n"])
	}), Options{})
	var reused []bool
	for i := range 3 {
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = append(reused, ci.Reused) }}
		req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(fmt.Sprintf(`{"n": %d}`+"\n", i)))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if want := []bool{false, true, true}; !slices.Equal(reused, want) {
		t.Errorf("connections reused %v, want %v", reused, want)
	}
}

func TestClientOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("198.18.0.7"), Port: 80}, "198.18.0.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:198.18.0.7"), Port: 80}, "198.18.0.7"},
		{&net.TCPAddr{IP: net.ParseIP("fd00:1:2:3:4:5:6:7"), Port: 80}, "fd00:1:2:3::"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, "fe80::"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, "invalid IP"},
	} {
		if got := clientOf(tc.addr).String(); got != tc.want {
			t.Errorf("clientOf(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}
