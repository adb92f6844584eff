package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reach-tools/reach/probe"
)

func TestWebhookRetriesWithBackoff(t *testing.T) {
	var calls atomic.Int32
	got := make(chan Alert, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		var a Alert
		if err := json.Unmarshal(b, &a); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		got <- a
	}))
	defer srv.Close()

	w := &Webhook{URL: srv.URL, Backoff: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	w.Notify(Alert{Endpoint: "db", State: StateDown, Previous: StateUp, Class: probe.Refused, Cause: "not-listening",
		Findings: []Finding{{Issue: "Server not running", Evidence: "no socket", Fix: "start it"}}})
	select {
	case a := <-got:
		if a.Endpoint != "db" || a.State != StateDown || a.Cause != "not-listening" || len(a.Findings) != 1 || a.Class != probe.Refused {
			t.Errorf("received %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("webhook never delivered")
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("delivered after %v; backoff of 10ms+20ms was not applied", d)
	}
}

func TestWebhookNotifyNeverBlocks(t *testing.T) {
	w := &Webhook{URL: "http://127.0.0.1:1/"} // never run: the queue fills
	done := make(chan struct{})
	go func() {
		for range webhookQueue + 10 {
			w.Notify(Alert{Endpoint: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked on a full queue")
	}
}

func TestWebhookGivesUp(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	w := &Webhook{URL: srv.URL, Attempts: 3, Backoff: time.Millisecond}
	err := w.send(t.Context(), Alert{Endpoint: "db"})
	if err == nil || calls.Load() != 3 {
		t.Errorf("err %v after %d calls; want an error after 3", err, calls.Load())
	}
}

// TestWebhookErrorsHideSecrets: chat webhooks carry their secret in the
// URL's path (hooks.slack.com/services/T/B/SECRET), query or user info;
// errors and log lines name only the scheme and host.
func TestWebhookErrorsHideSecrets(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"status 503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"connection closed", func(w http.ResponseWriter, r *http.Request) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			var logs bytes.Buffer
			u := strings.Replace(srv.URL, "http://", "http://bot:PASSWORD@", 1) + "/services/T0/B0/PATHSECRET?token=QUERYSECRET"
			w := &Webhook{URL: u, Attempts: 2, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			err := w.send(t.Context(), Alert{Endpoint: "db"})
			if err == nil {
				t.Fatal("no error")
			}
			all := err.Error() + "\n" + logs.String()
			for _, secret := range []string{"PASSWORD", "PATHSECRET", "QUERYSECRET"} {
				if strings.Contains(all, secret) {
					t.Errorf("%s shown:\n%s", secret, all)
				}
			}
			if host := strings.TrimPrefix(srv.URL, "http://"); !strings.Contains(err.Error(), host) {
				t.Errorf("error %q does not name the host %s", err, host)
			}
		})
	}
}

// TestWebhookRetriesOnlyWhatMayPass: a request the receiver refuses as
// such (400, 401, 404: a wrong URL or token) fails the same way every time;
// retrying it only holds up the alerts queued behind it. Timeouts, rate
// limits and server errors are retried.
func TestWebhookRetriesOnlyWhatMayPass(t *testing.T) {
	for _, c := range []struct {
		status int
		calls  int32
	}{
		{http.StatusBadRequest, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusNotFound, 1},
		{http.StatusRequestTimeout, 3},
		{http.StatusTooManyRequests, 3},
		{http.StatusBadGateway, 3},
	} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(c.status)
		}))
		w := &Webhook{URL: srv.URL, Attempts: 3, Backoff: time.Millisecond}
		err := w.send(t.Context(), Alert{Endpoint: "db"})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), http.StatusText(c.status)) || calls.Load() != c.calls {
			t.Errorf("status %d: %d calls, err %v; want %d calls and an error naming the status", c.status, calls.Load(), err, c.calls)
		}
	}
}

// TestWebhookDrainsOnShutdown: alerts queued when reach watch stops are
// still sent (for a few seconds): a "down" lost there was never sent, as
// the restarted process restores the state without a change to announce.
func TestWebhookDrainsOnShutdown(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
	}))
	defer srv.Close()
	w := &Webhook{URL: srv.URL, Backoff: time.Millisecond}
	for i := range 8 {
		w.Notify(Alert{Endpoint: fmt.Sprint("db-", i), State: StateDown})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // stopping already
	w.Run(ctx)
	if got.Load() != 8 {
		t.Errorf("%d of 8 queued alerts sent on shutdown", got.Load())
	}
}

// TestWebhookIdempotencyKey: an outbox alert sent twice (its replica died
// before recording the send) carries the same key both times, for the
// receiver to drop the repeat; a monitor alone's alerts carry none.
func TestWebhookIdempotencyKey(t *testing.T) {
	keys := make(chan string, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys <- r.Header.Get("Idempotency-Key")
	}))
	defer srv.Close()
	w := &Webhook{URL: srv.URL}
	for _, id := range []int64{7, 7, 0} {
		if err := w.Deliver(t.Context(), Alert{ID: id, Endpoint: "db", State: StateDown}); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"reach-alert-7", "reach-alert-7", ""} {
		if got := <-keys; got != want {
			t.Errorf("request %d: Idempotency-Key %q, want %q", i+1, got, want)
		}
	}
}
