package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/version"
)

// defaultCallTimeout bounds one protocol call when the caller's http.Client
// has no timeout of its own.
const defaultCallTimeout = 10 * time.Second

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

// ErrSlow is a call that connected but got no (whole) answer in time: the
// other side runs and is reached, it is slow (an agent lists its host's
// sockets with their processes), so a longer timeout may get the answer.
var ErrSlow = errors.New("agent: connected, but no answer in time")

// slow wraps err in ErrSlow when it is a timeout after the connection was
// made; a timeout before it is a host that does not answer at all.
func slow(err error, connected bool) error {
	var ne net.Error
	if connected && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %w", ErrSlow, err)
	}
	return err
}

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
func (c *client) call(ctx context.Context, method, path string, query url.Values,
	in, out any) error {
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
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }})
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return &CallError{Method: method, URL: u, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", version.UserAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &CallError{Method: method, URL: u, Err: slow(err, connected.Load())}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		cerr := &CallError{Method: method, URL: u, Status: resp.StatusCode,
			Err: fmt.Errorf("%s", strings.TrimSpace(string(msg)))}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			cerr.Err = fmt.Errorf("%w: %s", ErrUnauthorized, strings.TrimSpace(string(msg)))
		case http.StatusTooManyRequests:
			cerr.Err = fmt.Errorf("%w: retry after %ss", ErrRateLimited, resp.Header.Get("Retry-After"))
		}
		return cerr
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxBody)).Decode(out); err != nil {
		return &CallError{Method: method, URL: u, Status: resp.StatusCode,
			Err: fmt.Errorf("bad answer: %w", slow(err, true))}
	}
	return nil
}

// Client asks an agent for server-side evidence. It is a
// doctor.RemoteEvidence: set it as doctor.Options.Remote.
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

// Evidence asks the agent what it sees for a connection from us to addr:
// listeners on addr's port (and nearby ports), and the firewall rules that
// decide it. Its errors are *doctor.AgentError, wrapping the *CallError.
func (c *Client) Evidence(ctx context.Context, addr netip.AddrPort) (doctor.HostEvidence, error) {
	ev, err := c.EvidenceFor(ctx, netip.Addr{}, addr)
	if err != nil {
		return ev, &doctor.AgentError{URL: c.c.base, Failure: failure(err), Err: err}
	}
	return ev, nil
}

// failure says how a call to an agent or hub failed, for the doctor.
func failure(err error) doctor.AgentFailure {
	var ce *CallError
	switch {
	case errors.Is(err, ErrUnauthorized):
		return doctor.AgentUnauthorized
	case errors.Is(err, ErrRateLimited):
		return doctor.AgentRateLimited
	case errors.Is(err, ErrSlow):
		return doctor.AgentSlow
	case errors.As(err, &ce) && ce.Status == 0: // no answer at all
		return doctor.AgentUnreachable
	}
	return doctor.AgentFailed
}

// EvidenceFor is Evidence for a connection from src rather than from us: a
// hub explaining what another agent saw.
func (c *Client) EvidenceFor(ctx context.Context, src netip.Addr, addr netip.AddrPort) (
	doctor.HostEvidence, error) {
	q := url.Values{"addr": {addr.String()}}
	if src.IsValid() {
		q.Set("src", src.String())
	}
	var ev doctor.HostEvidence
	err := c.c.call(ctx, http.MethodGet, PathEvidence, q, nil, &ev)
	if err == nil {
		ev.Host = "agent " + ev.Host + " (" + c.c.base + ")"
	}
	return ev, err
}

var (
	_ doctor.RemoteEvidence = (*Client)(nil)
	_ doctor.RemoteEvidence = (*Discovery)(nil)
)

// ErrNoAgent is returned by Discovery when the hub knows no agent for an
// address.
var ErrNoAgent = errors.New("agent: the hub knows no agent for that address")

// Discovery finds the agent on a target host through the hub's hosts list
// (their agent: URLs). It is a doctor.RemoteEvidence.
type Discovery struct {
	hub   *client
	token string
}

// NewDiscovery returns a Discovery asking the hub at base. The same token
// and http.Client are used for the hub and the agents.
func NewDiscovery(base, token string, hc *http.Client) (*Discovery, error) {
	c, err := newClient(base, token, hc)
	if err != nil {
		return nil, err
	}
	return &Discovery{hub: c, token: token}, nil
}

// Evidence finds the agent for addr's host and asks it. Its errors are
// *doctor.AgentError: the hub or the agent failed, or the hub knows no
// agent there (doctor.AgentNone, wrapping ErrNoAgent).
func (d *Discovery) Evidence(ctx context.Context, addr netip.AddrPort) (doctor.HostEvidence, error) {
	var hosts []AgentInfo
	if err := d.hub.call(ctx, http.MethodGet, PathAgents, nil, nil, &hosts); err != nil {
		return doctor.HostEvidence{},
			&doctor.AgentError{Hub: true, URL: d.hub.base, Failure: failure(err), Err: err}
	}
	for _, h := range hosts {
		if h.Addr == addr.Addr().Unmap() && h.Agent != "" {
			c, err := NewClient(h.Agent, d.token, d.hub.http)
			if err != nil {
				return doctor.HostEvidence{},
					&doctor.AgentError{Name: h.Name, URL: h.Agent, Failure: doctor.AgentFailed, Err: err}
			}
			ev, err := c.Evidence(ctx, addr)
			var ae *doctor.AgentError
			if errors.As(err, &ae) {
				ae.Name, ae.URL = h.Name, h.Agent
			}
			return ev, err
		}
	}
	return doctor.HostEvidence{}, &doctor.AgentError{Hub: true, URL: d.hub.base, Failure: doctor.AgentNone,
		Err: fmt.Errorf("%w: %s (give its hosts entry an agent: URL in the hub config)",
			ErrNoAgent, addr.Addr())}
}
