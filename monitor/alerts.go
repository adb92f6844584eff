package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/reach-tools/reach/internal/version"
)

// Webhook defaults.
const (
	DefaultWebhookAttempts = 6
	DefaultWebhookBackoff  = time.Second
	webhookQueue           = 1024
	maxWebhookBackoff      = time.Minute
)

// Webhook POSTs each Alert as JSON to a URL, in order, retrying failures with
// exponential backoff (but not a 4xx refusal other than 408 and 429: it
// would fail the same way). Notify never blocks: alerts queue (up to 1024; older
// ones are kept and newer ones dropped, with a log line, beyond that).
type Webhook struct {
	URL string // empty drops alerts; change it with SetURL once running
	// Client sends the requests; nil uses one with a 10 s timeout.
	Client *http.Client
	// Attempts per alert (DefaultWebhookAttempts) and the first retry delay,
	// doubled each time up to a minute (DefaultWebhookBackoff).
	Attempts int
	Backoff  time.Duration
	Logger   *slog.Logger

	once  sync.Once
	queue chan Alert
	mu    sync.Mutex // guards URL
}

// SetURL changes where alerts go (on a configuration reload).
func (w *Webhook) SetURL(u string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.URL = u
}

func (w *Webhook) url() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.URL
}

func (w *Webhook) init() {
	w.once.Do(func() { w.queue = make(chan Alert, webhookQueue) })
}

// Notify queues an alert for Run to send.
func (w *Webhook) Notify(a Alert) {
	w.init()
	if w.url() == "" {
		return
	}
	select {
	case w.queue <- a:
	default:
		w.logger().Error("webhook queue full; alert dropped", "endpoint", a.Endpoint, "state", a.State)
	}
}

// Deliver sends a at once, with Attempts and Backoff, and returns when it
// was delivered or failed for good (Deliverer); without a URL it does
// nothing. Replicas send their outbox through it, so an alert is marked
// sent only once its receiver has it.
func (w *Webhook) Deliver(ctx context.Context, a Alert) error {
	if w.url() == "" {
		return nil
	}
	return w.send(ctx, a)
}

func (w *Webhook) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

// webhookDrain bounds sending the alerts still queued when Run's context
// ends: a change announced just before a restart is not seen again after it.
const webhookDrain = 5 * time.Second

// Run sends queued alerts until ctx ends, then for up to 5 s those still
// queued.
func (w *Webhook) Run(ctx context.Context) {
	w.init()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case a := <-w.queue:
			if err := w.send(ctx, a); err != nil {
				if ctx.Err() != nil {
					w.drain(ctx, &a) // interrupted: send it with the rest
					return
				}
				w.logger().Error("webhook failed; alert lost", "endpoint", a.Endpoint, "state", a.State, "err", err)
			}
		}
	}
	w.drain(ctx, nil)
}

// drain sends first (when set) and the queued alerts, within webhookDrain.
func (w *Webhook) drain(ctx context.Context, first *Alert) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), webhookDrain)
	defer cancel()
	for {
		var a Alert
		if first != nil {
			a, first = *first, nil
		} else {
			select {
			case a = <-w.queue:
			default:
				return
			}
		}
		if err := w.send(dctx, a); err != nil {
			w.logger().Error("webhook failed while stopping; alert lost", "endpoint", a.Endpoint, "state", a.State, "err", err)
		}
	}
}

func (w *Webhook) send(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	attempts, backoff := w.Attempts, w.Backoff
	if attempts <= 0 {
		attempts = DefaultWebhookAttempts
	}
	if backoff <= 0 {
		backoff = DefaultWebhookBackoff
	}
	var last error
	for i := range attempts {
		if i > 0 {
			w.logger().Warn("webhook retry", "endpoint", a.Endpoint, "attempt", i+1, "in", backoff, "err", last)
			select {
			case <-ctx.Done():
				return fmt.Errorf("after %d attempts, shutting down: %w", i, last)
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxWebhookBackoff)
		}
		if last = w.post(ctx, client, body, a.ID); last == nil {
			return nil
		}
		var se *statusError
		if errors.As(last, &se) && se.code/100 == 4 && se.code != http.StatusRequestTimeout && se.code != http.StatusTooManyRequests {
			return fmt.Errorf("not retried: %w (check the webhook URL and its credentials)", last)
		}
	}
	return fmt.Errorf("after %d attempts: %w", attempts, last)
}

// post sends one alert's body. An alert from the replicas' outbox carries
// its id as the Idempotency-Key header too: a replica that dies after the
// receiver took the alert but before it recorded the send leaves it to
// the next, which sends it again with the same key, for the receiver to
// drop.
func (w *Webhook) post(ctx context.Context, client *http.Client, body []byte, id int64) error {
	u := w.url()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", version.UserAgent)
	if id != 0 {
		req.Header.Set("Idempotency-Key", fmt.Sprintf("reach-alert-%d", id))
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the whole URL
		}
		return fmt.Errorf("POST %s: %w", hideURLSecrets(req.URL), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return &statusError{url: hideURLSecrets(req.URL), code: resp.StatusCode, status: resp.Status}
	}
	return nil
}

// statusError is a webhook's answer other than 2xx.
type statusError struct {
	url, status string
	code        int
}

func (e *statusError) Error() string { return "POST " + e.url + ": " + e.status }

// RedactWebhook gives a webhook URL as logs and --check-config show it:
// scheme and host only (see hideURLSecrets); what does not parse is hidden.
func RedactWebhook(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return hideURLSecrets(u)
}

// hideURLSecrets gives a webhook URL for messages: chat webhooks carry
// their secret in the path (hooks.slack.com/services/T/B/SECRET), the query
// or the user info, so only the scheme and host are shown.
func hideURLSecrets(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		s += "/..."
	}
	return s
}
