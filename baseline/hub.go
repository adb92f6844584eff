package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/version"
	"github.com/reach-tools/reach/probe"
)

// The hub's whole matrix is read through its dashboard API, not from its
// config: the config says which agent should probe what, but only the
// agents, from their own hosts, can say whether they reach it. A pair is
// measured "now" when the hub holds a result the agent took after the
// measurement began, so Diff waits for the agents' next round.

// MatrixPath is where a hub serves its matrix as JSON, behind the
// dashboard's token (reach watch's REACH_WATCH_TOKEN).
const MatrixPath = "/agents/matrix.json"

// ErrHub marks a hub that could not be asked, or whose answer is not a
// matrix.
var ErrHub = errors.New("baseline: hub")

// Hub is a hub to read the matrix from: its base URL (http://hub:9190)
// and the dashboard's token ("" when it has none).
type Hub struct {
	URL   string
	Token string
	// Client makes the requests; nil uses one with a 10 s timeout.
	Client *http.Client
	// poll is how often Diff asks again while results are older than its
	// start; zero means a second.
	poll time.Duration
}

// matrix is the JSON the hub serves at MatrixPath (hub.Matrix).
type matrix struct {
	Interval string    `json:"interval"`
	Sources  []string  `json:"sources"`
	Targets  []string  `json:"targets"`
	Cells    [][]*cell `json:"cells"`
}

type cell struct {
	Class probe.Class `json:"class"`
	Last  time.Time   `json:"last"`
	RTT   string      `json:"rtt"`
	Stale bool        `json:"stale"`
}

// fetch reads the hub's matrix, at most MaxFileSize bytes of it.
func (h *Hub) fetch(ctx context.Context) (*matrix, error) {
	u, err := url.Parse(strings.TrimRight(h.URL, "/") + MatrixPath)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q: give the hub's base URL, e.g. http://hub:9190", ErrHub, h.URL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHub, err)
	}
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	req.Header.Set("User-Agent", version.UserAgent)
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHub, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxFileSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: reading %s: %w", ErrHub, u.Redacted(), err)
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("%w: %s: 401 unauthorized: set REACH_WATCH_TOKEN to the hub's dashboard token", ErrHub, u.Redacted())
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s: 404: is it a reach watch with an agents: section?", ErrHub, u.Redacted())
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s: %s", ErrHub, u.Redacted(), resp.Status)
	case len(body) > MaxFileSize:
		return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrHub, u.Redacted(), MaxFileSize)
	}
	var m matrix
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: not a matrix: %w", ErrHub, u.Redacted(), err)
	}
	if len(m.Cells) != len(m.Sources) {
		return nil, fmt.Errorf("%w: %s: %d rows for %d sources", ErrHub, u.Redacted(), len(m.Cells), len(m.Sources))
	}
	return &m, nil
}

// entries makes an entry of every cell that has a result. fresh reports
// whether each was taken after since (every one, for a zero since).
func (m *matrix) entries(since time.Time) (out []Entry, fresh []bool, err error) {
	for i, src := range m.Sources {
		if src == LocalSource || !endpoint.ValidName(src) {
			return nil, nil, fmt.Errorf("%w: source %q is not an agent's name", ErrHub, src)
		}
		if len(m.Cells[i]) != len(m.Targets) {
			return nil, nil, fmt.Errorf("%w: row %s has %d cells for %d targets", ErrHub, src, len(m.Cells[i]), len(m.Targets))
		}
		for j, c := range m.Cells[i] {
			if c == nil {
				continue // not asked of this source, or no result yet
			}
			e := Entry{Target: Target{Source: src, Target: m.Targets[j]}, Class: c.Class}
			if c.Class == probe.Open {
				d, err := time.ParseDuration(c.RTT)
				if err != nil {
					return nil, nil, fmt.Errorf("%w: %s → %s: rtt %q: %w", ErrHub, src, m.Targets[j], c.RTT, err)
				}
				e.ConnectMS = ms(d)
			}
			if err := e.check(); err != nil {
				return nil, nil, fmt.Errorf("%w: %s → %s: %w", ErrHub, src, m.Targets[j], err)
			}
			out = append(out, e)
			fresh = append(fresh, !c.Stale && c.Last.After(since))
		}
	}
	return out, fresh, nil
}

func (m *matrix) interval() time.Duration {
	d, err := time.ParseDuration(m.Interval)
	if err != nil || d <= 0 {
		return 10 * time.Second
	}
	return d
}

// Matrix reads the hub's matrix: an entry per (agent, target) pair with a
// result, its class and connect time as the agent last saw them. Causes
// are not known here: reach check TARGET --hub asks the target's agent.
func (h *Hub) Matrix(ctx context.Context) ([]Entry, error) {
	m, err := h.fetch(ctx)
	if err != nil {
		return nil, err
	}
	es, _, err := m.entries(time.Time{})
	if err == nil && len(es) == 0 {
		err = fmt.Errorf("%w: %s: the matrix has no results yet; wait for the agents' first round", ErrHub, h.URL)
	}
	return es, err
}

// fresh waits until the hub holds a result taken after since for every
// pair, asking again every poll, at most two of the agents' intervals
// after since; then it returns what it holds, and how many pairs had no
// newer result.
func (h *Hub) fresh(ctx context.Context, since time.Time) ([]Entry, int, error) {
	poll := h.poll
	if poll <= 0 {
		poll = time.Second
	}
	for {
		m, err := h.fetch(ctx)
		if err != nil {
			return nil, 0, err
		}
		es, fresh, err := m.entries(since)
		if err != nil {
			return nil, 0, err
		}
		old := 0
		for _, f := range fresh {
			if !f {
				old++
			}
		}
		if old == 0 || time.Since(since) > 2*m.interval() {
			return es, old, nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(poll):
		}
	}
}
