package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Alertmanager keeps a Prometheus Alertmanager's set of reach alerts equal
// to what should be firing (Active): each endpoint down and announced
// (alertname ReachEndpointDown) and each flapping one (ReachEndpointFlapping),
// posted to its API v2 (POST /api/v2/alerts) at every change and again
// every ResendEvery, with endsAt four resends ahead, so that Alertmanager
// never resolves one by itself while reach still fires it; one that stops
// firing is posted once more with endsAt now, which resolves it.
// Notify only wakes it: Active is the truth, so a failed post is made
// good by the next.
type Alertmanager struct {
	URL         string // base URL, e.g. http://127.0.0.1:9093; empty sends nothing
	ResendEvery time.Duration
	// DashboardURL is where generatorURL points: the dashboard, with the
	// endpoint to open after #.
	DashboardURL string
	// Active returns the alerts that fire now (Alerting.Active).
	Active func() []Alert
	// Holds, when set, says whether this process sends alerts now (a
	// replica holding the alerts' lease): one that does not posts nothing,
	// and leaves what it posted to the holder.
	Holds func() bool
	// Client sends the requests; nil uses one with a 10 s timeout.
	Client *http.Client
	Logger *slog.Logger

	once   sync.Once
	wake   chan struct{}
	mu     sync.Mutex // guards URL, ResendEvery, DashboardURL
	posted map[string]amAlert
	failed bool // the last post failed (logged once until one succeeds)
}

// amAlert is one alert of Alertmanager's API v2 (postableAlert).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// SetConfig changes where alerts go (on a configuration reload).
func (am *Alertmanager) SetConfig(a Alerts, dashboard string) {
	am.mu.Lock()
	am.URL, am.ResendEvery = a.Alertmanager, a.ResendEvery
	if a.DashboardURL != "" {
		dashboard = a.DashboardURL
	}
	am.DashboardURL = dashboard
	am.mu.Unlock()
	am.Notify(Alert{})
}

func (am *Alertmanager) init() {
	am.once.Do(func() { am.wake = make(chan struct{}, 1) })
}

// Notify implements Notifier: something changed, post the set soon.
func (am *Alertmanager) Notify(Alert) {
	am.init()
	select {
	case am.wake <- struct{}{}:
	default:
	}
}

// Run posts the set at each change and every ResendEvery until ctx ends.
func (am *Alertmanager) Run(ctx context.Context) {
	am.init()
	for {
		am.mu.Lock()
		every := am.ResendEvery
		am.mu.Unlock()
		if every <= 0 {
			every = DefaultResendEvery
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-am.wake:
		case <-t.C:
		}
		t.Stop()
		am.Sync(ctx, time.Now())
	}
}

// Sync posts what fires at now, and the end of what stopped firing. Run
// calls it; call it yourself only without Run.
func (am *Alertmanager) Sync(ctx context.Context, now time.Time) error {
	am.mu.Lock()
	base, every, dash := am.URL, am.ResendEvery, am.DashboardURL
	am.mu.Unlock()
	if base == "" || am.Active == nil {
		return nil
	}
	if am.Holds != nil && !am.Holds() {
		am.posted = nil
		return nil
	}
	if every <= 0 {
		every = DefaultResendEvery
	}
	cur := map[string]amAlert{}
	for _, a := range am.Active() {
		p := postable(a, dash)
		p.EndsAt = now.Add(4 * every)
		cur[amKey(p.Labels)] = p
	}
	batch := make([]amAlert, 0, len(cur)+len(am.posted))
	for _, p := range cur {
		batch = append(batch, p)
	}
	for k, p := range am.posted {
		if _, ok := cur[k]; !ok {
			p.EndsAt = now // resolved
			batch = append(batch, p)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	err := am.post(ctx, base, batch)
	log := am.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err != nil {
		if !am.failed {
			log.Error("alertmanager: post failed; retried at the next change or resend", "alerts", len(batch), "err", err)
		}
		am.failed = true
		return err // posted stays: the resolved ones go with the next try
	}
	if am.failed {
		log.Info("alertmanager: posts succeed again")
	}
	am.failed = false
	am.posted = cur
	return nil
}

// amKey is an alert's identity in Alertmanager: its whole label set.
func amKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(k + "=" + labels[k] + "\x00")
	}
	return b.String()
}

// postable is an alert as Alertmanager takes it: labels endpoint,
// source, class, cause and alertname (and the endpoint's own labels, which
// never replace these); annotations summary (the Text), issue, evidence and
// fix (the doctor's most likely finding), verdict, target and dependents.
func postable(a Alert, dashboard string) amAlert {
	p := amAlert{Labels: map[string]string{}, Annotations: map[string]string{}, StartsAt: a.Since}
	maps.Copy(p.Labels, a.Labels)
	name := "ReachEndpointDown"
	if a.Kind == AlertFlapping {
		name = "ReachEndpointFlapping"
	}
	for k, v := range map[string]string{"alertname": name, "endpoint": a.Endpoint, "source": a.Source,
		"class": string(a.Class), "cause": a.Cause} {
		delete(p.Labels, k)
		if v != "" {
			p.Labels[k] = v
		}
	}
	if a.Kind == AlertFlapping {
		delete(p.Labels, "class") // it changes each time
		delete(p.Labels, "cause")
		p.StartsAt = time.Time{}
	}
	ann := map[string]string{"summary": a.Text, "verdict": a.Verdict, "target": a.Target,
		"dependents": strings.Join(a.Dependents, ", "), "network_change": a.Change}
	if len(a.Findings) > 0 {
		f := a.Findings[0]
		ann["issue"], ann["evidence"], ann["fix"] = f.Issue, f.Evidence, f.Fix
	}
	for k, v := range ann {
		if v != "" {
			p.Annotations[k] = v
		}
	}
	if dashboard != "" {
		if u, err := url.Parse(dashboard); err == nil {
			u.Fragment = a.Source + "/" + a.Endpoint
			p.GeneratorURL = u.String()
		}
	}
	return p
}

func (am *Alertmanager) post(ctx context.Context, base string, batch []amAlert) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("alertmanager URL %s: %w", RedactWebhook(base), errors.Unwrap(err))
	}
	u = u.JoinPath("api", "v2", "alerts")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alertmanager URL %s: %w", RedactWebhook(base), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "reach-watch")
	client := am.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST %s: %w", hideURLSecrets(u), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", hideURLSecrets(u), resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
