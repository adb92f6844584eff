package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
)

// serveAgent serves a's Handler with Serve on loopback until the test ends.
func serveAgent(t *testing.T, a *Agent, opt ServeOptions) string {
	t.Helper()
	ln := testnet.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln, opt) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// getFrom sends GET path from the loopback address from, with token when
// set, and returns the status.
func getFrom(t *testing.T, from netip.Addr, url, token string) int {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}).DialContext}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ~100 anonymous requests a second at an agent do not make a token holder
// wait: they are refused (401) before any budget is spent.
func TestHostileAnonymousFloodSparesTokenHolders(t *testing.T) {
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken}) // DefaultQueryRate
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + serveAgent(t, a, ServeOptions{MaxConns: 1000, MaxConnsPerClient: 1000})
	stranger, owner := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	anon := map[int]int{}
	wg.Go(func() { // 150 requests, one every 10 ms: 100/s for 1.5 s
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := range 150 {
			<-tick.C
			wg.Go(func() {
				tok := []string{"", "wrong"}[i%2]
				code := getFrom(t, stranger, base+PathMetrics, tok)
				mu.Lock()
				anon[code]++
				mu.Unlock()
			})
		}
	})
	var owned []int
	for range 5 { // 5 requests 300 ms apart: within 5/s
		owned = append(owned, getFrom(t, owner, base+PathMetrics, testToken))
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("anonymous: %v; token holder: %v", anon, owned)
	for i, code := range owned {
		if code != http.StatusOK {
			t.Errorf("token holder's request %d: %d, want 200 whatever strangers send", i, code)
		}
	}
	if anon[http.StatusUnauthorized] != 150 {
		t.Errorf("anonymous requests answered %v, want 150 x 401", anon)
	}
}

// Each token holder has its own budget: one that spends it gets 429, the
// next one still gets answers.
func TestRateLimitPerCaller(t *testing.T) {
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + serveAgent(t, a, ServeOptions{})
	greedy, other := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	var codes []int
	for range 4 { // burst 2 at 1/s
		codes = append(codes, getFrom(t, greedy, base+PathMetrics, testToken))
	}
	if codes[0] != 200 || codes[3] != http.StatusTooManyRequests {
		t.Errorf("greedy caller: %v, want 200 first and 429 once its burst of 2 is spent", codes)
	}
	if code := getFrom(t, other, base+PathMetrics, testToken); code != http.StatusOK {
		t.Errorf("another caller: %d, want 200: budgets are per caller", code)
	}
}

func TestLimitersBounded(t *testing.T) {
	l := newLimiters(1)
	for i := range maxIdentities + 10 {
		l.allow(fmt.Sprintf("addr:%d", i))
		l.allow(fmt.Sprintf("addr:%d", i)) // spend the burst: none is idle
	}
	if n := len(l.per); n > maxIdentities+1 {
		t.Errorf("%d limiters kept, want at most %d", n, maxIdentities+1)
	}
	if l.allow("addr:new") {
		t.Errorf("a newcomer beyond %d busy callers got a fresh budget; want the shared one, spent", maxIdentities)
	}
}

// A slow client on the agent's /metrics is cut within the timeouts: one
// that withholds a body it declared, one that sends half its headers, and
// an idle kept-alive connection.
func TestHostileSlowClientsOnAgent(t *testing.T) {
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	opt := ServeOptions{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond,
		IdleTimeout: 400 * time.Millisecond}
	addr := serveAgent(t, a, opt)
	auth := "Authorization: Bearer " + testToken + "\r\n"
	for _, tc := range []struct {
		name, send string
		within     time.Duration
		reply      string
	}{
		{"body withheld, with the token", "GET /metrics HTTP/1.1\r\nHost: a\r\n" + auth +
			"Content-Length: 100\r\n\r\n", opt.ReadTimeout, "HTTP/1.1 200"},
		{"body withheld, no token", "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n",
			opt.ReadTimeout, "HTTP/1.1 401"},
		{"body withheld, wrong method", "POST /metrics HTTP/1.1\r\nHost: a\r\n" + auth +
			"Content-Length: 100\r\n\r\n", opt.ReadTimeout, "HTTP/1.1 405"},
		{"headers withheld", "GET /metrics HTTP/1.1\r\nHost: a\r\n", opt.ReadHeaderTimeout, ""},
		{"idle keep-alive", "GET /metrics HTTP/1.1\r\nHost: a\r\n" + auth + "\r\n", opt.IdleTimeout,
			"HTTP/1.1 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testnet.Hold(t, netip.Addr{}, addr, tc.send, 10*time.Second)
			t.Logf("%s: cut after %v (timeout %v)", tc.name, h.After.Round(time.Millisecond), tc.within)
			if !h.Closed || h.After > tc.within+time.Second {
				t.Errorf("closed=%v after %v, want a cut within %v", h.Closed, h.After, tc.within)
			}
			if !strings.HasPrefix(h.Reply, tc.reply) {
				t.Errorf("reply %.40q, want %q first", h.Reply, tc.reply)
			}
		})
	}
}
