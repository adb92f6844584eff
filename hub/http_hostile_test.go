package hub

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/httpsafe"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/web"
)

// Slow clients of reach watch's server (the hub's protocol and the
// dashboard's API on one port) are cut within its configured timeouts: a
// token holder that declares a batch and withholds it, strangers that
// declare bodies the server will not read, half-sent headers, an idle
// kept-alive connection. They hung for 150 s and more: only the header
// timeout was set, and after a 401 or 405 net/http waited, undeadlined,
// to drain the declared body.
func TestHostileSlowClientsOnWatch(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	const token = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(tok, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := monitor.ParseConfig("reach.yaml", []byte(`endpoints:
  - {name: api, target: "`+testnet.ClosedPort(t).String()+`"}
agents:
  token_file: `+tok+`
  hosts:
    - {name: web-1, addr: 127.0.0.1}
  pairs:
    - {from: web-1, to: "127.0.0.1:5432"}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := httpsafe.Options{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 700 * time.Millisecond,
		WriteTimeout: 5 * time.Second, IdleTimeout: 500 * time.Millisecond}
	w, err := NewWatch(t.Context(), cfg, WatchOptions{NoDoctor: true, Server: srv,
		Dashboard: web.Options{Token: "dashboard-token-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	addr := ln.Addr().String()
	agentAuth := "Authorization: Bearer " + token + "\r\n"
	dashAuth := "Authorization: Bearer dashboard-token-0123456789\r\n"
	for _, tc := range []struct {
		name, send string
		timeout    time.Duration // the one that applies
		reply      string
	}{
		{"results: batch withheld by a token holder",
			"POST /agent/v1/results HTTP/1.1\r\nHost: h\r\n" + agentAuth + "Content-Length: 5000\r\n\r\n{\"agent\":",
			srv.ReadTimeout, "HTTP/1.1 400"},
		{"results: body withheld, no token",
			"POST /agent/v1/results HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n",
			srv.ReadTimeout, "HTTP/1.1 401"},
		{"api/endpoints: POST, body withheld",
			"POST /api/endpoints HTTP/1.1\r\nHost: h\r\n" + dashAuth + "Content-Length: 5000\r\n\r\n",
			srv.ReadTimeout, "HTTP/1.1 405"},
		{"api/endpoints: GET, body withheld",
			"GET /api/endpoints HTTP/1.1\r\nHost: h\r\n" + dashAuth + "Content-Length: 5000\r\n\r\n",
			srv.ReadTimeout, "HTTP/1.1 200"},
		{"api/endpoints: half the headers",
			"GET /api/endpoints HTTP/1.1\r\nHost: h\r\n", srv.ReadHeaderTimeout, ""},
		{"api/endpoints: idle keep-alive",
			"GET /api/endpoints HTTP/1.1\r\nHost: h\r\n" + dashAuth + "\r\n", srv.IdleTimeout, "HTTP/1.1 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testnet.Hold(t, netip.Addr{}, addr, tc.send, 10*time.Second)
			t.Logf("%s: cut after %v (timeout %v)", tc.name, h.After.Round(time.Millisecond), tc.timeout)
			if !h.Closed || h.After > tc.timeout+time.Second {
				t.Errorf("closed=%v after %v, want a cut within %v", h.Closed, h.After, tc.timeout)
			}
			if !strings.HasPrefix(h.Reply, tc.reply) {
				t.Errorf("reply %.60q, want %q first", h.Reply, tc.reply)
			}
		})
	}
}

// The dashboard's live-update stream outlives the server's write timeout
// (each write has its own deadline) and ends at its own lifetime.
func TestEventStreamLifetime(t *testing.T) {
	cfg, err := monitor.ParseConfig("reach.yaml", []byte(`endpoints:
  - {name: api, target: "`+testnet.ClosedPort(t).String()+`"}
`))
	if err != nil {
		t.Fatal(err)
	}
	const write, life, idle = 400 * time.Millisecond, 2500 * time.Millisecond, 300 * time.Millisecond
	w, err := NewWatch(t.Context(), cfg, WatchOptions{NoDoctor: true,
		Server:    httpsafe.Options{WriteTimeout: write, ReadTimeout: write, IdleTimeout: idle},
		Dashboard: web.Options{StreamLifetime: life}})
	if err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h := testnet.Hold(t, netip.Addr{}, ln.Addr().String(),
		"GET /api/events HTTP/1.1\r\nHost: h\r\n\r\n", 10*time.Second)
	// The stream's end is the chunked body's; then the connection idles.
	t.Logf("stream and idle connection closed after %v (write timeout %v, lifetime %v, idle %v); %d idle comments",
		h.After.Round(time.Millisecond), write, life, idle, strings.Count(h.Reply, ": idle"))
	if !h.Closed || h.After < life || h.After > life+idle+time.Second || !strings.HasSuffix(h.Reply, "\r\n0\r\n\r\n") {
		t.Errorf("closed=%v after %v, ending %q: want the stream to end at its lifetime %v", h.Closed,
			h.After, h.Reply[max(0, len(h.Reply)-20):], life)
	}
	// After the snapshot, each second brings an idle comment or, when the
	// probe's first result lands, a status event instead.
	later := strings.Count(h.Reply, ": idle") + strings.Count(h.Reply, "event: status")
	if !strings.Contains(h.Reply, "event: snapshot") || later < 2 {
		t.Errorf("stream %q: want a snapshot, then messages past the write timeout", h.Reply)
	}
}
