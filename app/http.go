package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxBody is how much of an HTTP body is read, for ExpectBody and to tell a
// proxy's error page; the rest is left unread.
const MaxBody = 64 << 10

// MaxRedirects bounds the redirects HTTP follows when asked to.
const MaxRedirects = 10

func init() { register("http", HTTP) }

// HTTP sends one GET for req.Path (HTTP/1.1, Host req.Host) and judges the
// answer: a status in req.ExpectStatus (default 200-399) and, when asked,
// req.ExpectBody in the body is Ready; any other status is AppError (a 502,
// 503 or 504 that a reverse proxy sent because its backend is down says
// so, HTTPResult.Proxy); an answer in TLS, or a TLS server's "plain HTTP
// request to an HTTPS port" page, is WrongProtocol. Redirects are followed
// only when req.Redirect is set, each over a connection it opens.
func HTTP(ctx context.Context, conn net.Conn, req Request) (Result, error) {
	r := Result{HTTP: &HTTPResult{}}
	u := requestURL(req)
	for hop := 0; ; hop++ {
		resp, body, first, err := roundTrip(conn, u)
		if r.FirstByte == 0 {
			r.FirstByte = first
		}
		if err != nil {
			var wp *wrongProtocolError
			if errors.As(err, &wp) {
				r.Cause, r.State, r.Detail = WrongProtocol, string(wp.kind), wp.Error()
				return r, nil
			}
			return r, err
		}
		judgeHTTP(&r, req, resp, body)
		loc := resp.Header.Get("Location")
		if req.Redirect == nil || loc == "" || !isRedirect(resp.StatusCode) || req.ExpectStatus.explicit(resp.StatusCode) {
			return r, nil
		}
		if hop == MaxRedirects {
			r.Ready, r.Cause = false, AppError
			r.Detail = fmt.Sprintf("more than %d redirects, the last to %s", MaxRedirects, loc)
			return r, nil
		}
		next, err := u.Parse(loc)
		if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
			r.Ready, r.Cause = false, AppError
			r.Detail = fmt.Sprintf("redirected to %q, which is not an http(s) URL", loc)
			return r, nil
		}
		c, err := req.Redirect(ctx, next.Scheme, hostPort(next))
		if err != nil {
			return r, fmt.Errorf("following the redirect to %s: %w", next.Redacted(), err)
		}
		stop := Deadline(ctx, c)
		defer func() { stop(); c.Close() }()
		conn, u = c, next
		r.HTTP.Redirects = append(r.HTTP.Redirects, next.String())
		r.HTTP.Location = ""
	}
}

// explicit reports whether code was asked for by a set given (a redirect
// the user expects is an answer, not a hop).
func (s StatusSet) explicit(code int) bool { return len(s) > 0 && s.Contains(code) }

func isRedirect(code int) bool {
	switch code {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

func requestURL(req Request) *url.URL {
	scheme := "http"
	if req.TLS {
		scheme = "https"
	}
	host := req.Host
	if host == "" && req.Addr.IsValid() {
		host = req.Addr.Addr().String()
	}
	if req.Addr.IsValid() && req.Addr.Port() != map[bool]uint16{true: 443, false: 80}[req.TLS] {
		host = net.JoinHostPort(strings.Trim(host, "[]"), fmt.Sprint(req.Addr.Port()))
	} else if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	path := req.Path
	if path == "" {
		path = "/"
	}
	u, err := url.Parse(scheme + "://" + host + path)
	if err != nil {
		u = &url.URL{Scheme: scheme, Host: host, Path: "/"}
	}
	return u
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
}

// wrongProtocolError: the peer answered in another protocol.
type wrongProtocolError struct {
	kind  Kind
	first []byte
	asked string
}

func (e *wrongProtocolError) Error() string {
	if e.kind == KindUnknown {
		return fmt.Sprintf("asked in %s, the server answered %s, which is not %s", e.asked, Quote(e.first), e.asked)
	}
	return fmt.Sprintf("asked in %s, the server answered %s: %s", e.asked, Quote(e.first), e.kind.Describe())
}

// firstByte records when the first byte was read.
type firstByte struct {
	net.Conn
	at time.Time
}

func (c *firstByte) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.at.IsZero() {
		c.at = time.Now()
	}
	return n, err
}

// roundTrip writes a GET for u on conn and reads the answer's head and up to
// MaxBody of its body. first is the time to the first byte. A peer that
// answers in another protocol is a *wrongProtocolError.
func roundTrip(conn net.Conn, u *url.URL) (resp *http.Response, body []byte, first time.Duration, err error) {
	hreq := &http.Request{Method: "GET", URL: u, Host: u.Host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"User-Agent": {"reach"}, "Accept": {"*/*"}}, Close: true}
	fb := &firstByte{Conn: conn}
	start := time.Now()
	if err := hreq.Write(conn); err != nil {
		return nil, nil, 0, err
	}
	br := bufio.NewReader(fb)
	peek, perr := br.Peek(5)
	if !fb.at.IsZero() {
		first = fb.at.Sub(start)
	}
	if len(peek) == 0 {
		return nil, nil, first, perr
	}
	if k := Sniff(peek); k != KindHTTP {
		more, _ := br.Peek(br.Buffered())
		return nil, nil, first, &wrongProtocolError{kind: k, first: more, asked: "HTTP"}
	}
	resp, err = http.ReadResponse(br, hreq)
	if err != nil {
		if isIO(err) {
			return nil, nil, first, err
		}
		more, _ := br.Peek(br.Buffered())
		return nil, nil, first, &wrongProtocolError{kind: KindUnknown, first: more, asked: "HTTP"}
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil && len(body) == 0 && !isIO(err) {
		err = nil
	}
	// A body cut short still tells what it had; the head is the answer.
	return resp, body, first, nil
}

// isIO reports whether err is the connection failing rather than the bytes
// being no HTTP.
func isIO(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		errors.Is(err, net.ErrClosed)
}

// plainToTLS are the bodies TLS servers answer a plain HTTP request with
// (Go's net/http, nginx, Apache httpd), lower case.
var plainToTLS = []string{"client sent an http request to an https server",
	"the plain http request was sent to https port", "speaking plain http to an ssl-enabled server port"}

// proxyServers are Server header values of reverse proxies and load
// balancers, lower case.
var proxyServers = []string{"nginx", "envoy", "haproxy", "traefik", "caddy", "apache", "openresty",
	"cloudflare", "awselb", "varnish", "squid", "istio", "kong", "ingress", "proxy", "gateway"}

// proxyBodies are what proxies' error pages say when their backend is
// down, lower case.
var proxyBodies = []string{"no healthy upstream", "upstream connect error", "no server is available",
	"bad gateway", "gateway timeout", "no available server", "backend", "upstream"}

func judgeHTTP(r *Result, req Request, resp *http.Response, body []byte) {
	h := r.HTTP
	h.Status = resp.StatusCode
	h.Server, h.Via = resp.Header.Get("Server"), resp.Header.Get("Via")
	h.Location = resp.Header.Get("Location")
	r.State, r.Version = resp.Status, h.Server
	lower := strings.ToLower(string(body))
	r.Ready, r.Cause, r.Detail = false, "", ""
	switch {
	case resp.StatusCode == 400 && !req.TLS && containsAny(lower, plainToTLS):
		r.Cause = WrongProtocol
		r.Detail = fmt.Sprintf("the server answered %s: %q: the port speaks HTTPS (TLS), not plain HTTP",
			resp.Status, firstLine(body))
	case !req.ExpectStatus.Contains(resp.StatusCode):
		r.Cause = AppError
		r.Detail = fmt.Sprintf("the server answered %s; expected %s", resp.Status, req.ExpectStatus)
		if resp.StatusCode >= 500 {
			h.Proxy = fromProxy(resp.StatusCode, h, lower)
			if h.Proxy {
				r.Detail += fmt.Sprintf("; it comes from a reverse proxy%s whose backend did not answer: "+
					"the application behind the proxy is down or unreachable from it", proxyName(h))
			}
		}
	case req.ExpectBody != "" && !strings.Contains(string(body), req.ExpectBody):
		r.Cause = AppError
		r.Detail = fmt.Sprintf("the server answered %s without %q in the body's first %d bytes (%d read)",
			resp.Status, req.ExpectBody, MaxBody, len(body))
	default:
		r.Ready = true
		r.Detail = "the server answered " + resp.Status
		if isRedirect(resp.StatusCode) && h.Location != "" {
			r.Detail += ", redirecting to " + h.Location + " (not followed)"
		}
	}
}

// fromProxy tells a proxy's answer for a backend that is down: 502 and 504
// are gateways' answers by definition (RFC 9110); a 503 is a proxy's when a
// Via header, a proxy's Server header or a proxy's error page says so.
func fromProxy(code int, h *HTTPResult, body string) bool {
	switch code {
	case 502, 504:
		return true
	case 503:
		return h.Via != "" || containsAny(strings.ToLower(h.Server), proxyServers) || containsAny(body, proxyBodies)
	}
	return false
}

func proxyName(h *HTTPResult) string {
	switch {
	case h.Server != "" && h.Via != "":
		return fmt.Sprintf(" (Server: %s, Via: %s)", h.Server, h.Via)
	case h.Server != "":
		return fmt.Sprintf(" (Server: %s)", h.Server)
	case h.Via != "":
		return fmt.Sprintf(" (Via: %s)", h.Via)
	}
	return ""
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
