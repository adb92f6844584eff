package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// defaultCallTimeout bounds one protocol call when the caller's http.Client
// has no timeout of its own.
const defaultCallTimeout = 10 * time.Second

// maxBody bounds what either side reads from the other.
const maxBody = 8 << 20

// CallError is a protocol call that failed: what was called and why. It
// unwraps to ErrUnauthorized or ErrRateLimited when the status says so.
type CallError struct {
	Method, URL string
	Status      int // 0 when no response came back
	Err         error
}

func (e *CallError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s %s: HTTP %d: %v", e.Method, e.URL, e.Status, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Method, e.URL, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

// client makes authenticated JSON calls to a hub or an agent.
type client struct {
	base  string // URL without trailing slash
	token string
	http  *http.Client
}

func newClient(base, token string, hc *http.Client) (*client, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agent: %q is not an http:// or https:// URL", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultCallTimeout}
	}
	return &client{base: strings.TrimRight(base, "/"), token: token, http: hc}, nil
}

// call sends in (when not nil) as JSON and decodes the answer into out.
func (c *client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return &CallError{Method: method, URL: u, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &CallError{Method: method, URL: u, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		cerr := &CallError{Method: method, URL: u, Status: resp.StatusCode, Err: fmt.Errorf("%s", strings.TrimSpace(string(msg)))}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			cerr.Err = fmt.Errorf("%w: %s", ErrUnauthorized, strings.TrimSpace(string(msg)))
		case http.StatusTooManyRequests:
			cerr.Err = fmt.Errorf("%w: retry after %ss", ErrRateLimited, resp.Header.Get("Retry-After"))
		}
		return cerr
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return &CallError{Method: method, URL: u, Status: resp.StatusCode, Err: fmt.Errorf("bad answer: %w", err)}
	}
	return nil
}

// Client asks an agent for server-side evidence.
type Client struct{ c *client }

// NewClient returns a client for the agent at base (e.g.
// "https://db-1:7070"). hc may be nil; pass one with a TLS config for https.
func NewClient(base, token string, hc *http.Client) (*Client, error) {
	c, err := newClient(base, token, hc)
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// Evidence asks the agent what it sees for port.
func (c *Client) Evidence(ctx context.Context, port uint16) (Evidence, error) {
	var ev Evidence
	err := c.c.call(ctx, http.MethodGet, PathEvidence, url.Values{"port": {strconv.Itoa(int(port))}}, nil, &ev)
	return ev, err
}
