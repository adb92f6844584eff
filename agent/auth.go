package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/reach-tools/reach/internal/bounded"
	"github.com/reach-tools/reach/internal/httpsafe"
)

// ErrNoToken is returned when a server or client is built without a token:
// reach never runs the agent protocol unauthenticated.
var ErrNoToken = errors.New("agent: no token: every agent and hub call needs the shared " +
	"bearer token (--token-file or REACH_TOKEN)")

// MinTokenBytes is the shortest shared token accepted: anything shorter can
// be guessed by whoever reaches an agent or the dashboard.
const MinTokenBytes = 16

// ErrShortToken marks a token shorter than MinTokenBytes (a *ShortTokenError).
var ErrShortToken = errors.New("agent: token too short")

// ShortTokenError is a token shorter than MinTokenBytes, and where it came from.
type ShortTokenError struct {
	From string // "token file /etc/reach/token", "REACH_TOKEN"
	Len  int    // in bytes, surrounding white space trimmed
}

func (e *ShortTokenError) Error() string {
	unit := "bytes"
	if e.Len == 1 {
		unit = "byte"
	}
	return fmt.Sprintf("the token in %s is %d %s; it needs at least %d, or it can be guessed: "+
		"make one with  head -c 32 /dev/urandom | base64", e.From, e.Len, unit, MinTokenBytes)
}

func (e *ShortTokenError) Unwrap() error { return ErrShortToken }

// CheckToken refuses a token shorter than MinTokenBytes; from says where
// it came from, for the message.
func CheckToken(from, tok string) error {
	if len(tok) < MinTokenBytes {
		return &ShortTokenError{From: from, Len: len(tok)}
	}
	return nil
}

// ErrUnauthorized is the error a client sees when the other side refused its
// token or certificate.
var ErrUnauthorized = errors.New("agent: unauthorized (wrong token or certificate)")

// ErrRateLimited is the error a client sees when the other side limits its
// query rate.
var ErrRateLimited = errors.New("agent: rate limited")

// RequireToken wraps next so that only requests carrying the bearer token
// reach it: the hub serves the protocol behind it. token is asked on each
// request, so a reload can change it.
func RequireToken(token func() string, next http.Handler) http.Handler {
	return guard(token, nil, next)
}

// guard wraps next so that only requests with the bearer token (and, when
// limit is set, within their caller's rate) reach it. The token is checked
// first: a request without it is refused before it can spend anyone's
// budget, so no number of anonymous requests makes a token holder wait.
// Refusals carry no detail beyond the status, so a prober learns nothing
// but "no".
func guard(token func() string, limit *limiters, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !httpsafe.Equal(got, token()) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reach"`)
			http.Error(w, "unauthorized: send the shared token as Authorization: Bearer",
				http.StatusUnauthorized)
			return
		}
		if limit != nil && !limit.allow(identity(r)) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// identity names an authenticated caller for its rate budget: the name its
// verified client certificate carries, else its IP address (the token is
// shared, so it names no one). Prometheus, the hub and a person running
// reach check each get their own budget.
func identity(r *http.Request) string {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return "cert:" + r.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return "addr:" + ap.Addr().Unmap().String()
	}
	return "addr:" + r.RemoteAddr
}

// maxIdentities bounds the limiters kept: only token holders get one, so
// this is the number of hosts asking at once, not of attackers.
const maxIdentities = 1024

// limiters hold one rate limiter per authenticated caller.
type limiters struct {
	rate  rate.Limit
	burst int

	mu  sync.Mutex
	per map[string]*rate.Limiter
}

func newLimiters(r rate.Limit) *limiters {
	return &limiters{rate: r, burst: max(1, int(r)*2), per: map[string]*rate.Limiter{}}
}

// allow spends one request of who's budget. When maxIdentities callers
// hold one, those with a full budget (idle lately) are forgotten first;
// should every one be busy, the newcomer shares the budget of the rest.
func (l *limiters) allow(who string) bool {
	l.mu.Lock()
	lim, ok := l.per[who]
	if !ok {
		if len(l.per) >= maxIdentities {
			maps.DeleteFunc(l.per, func(_ string, v *rate.Limiter) bool {
				return v.Tokens() >= float64(l.burst)
			})
		}
		if len(l.per) >= maxIdentities {
			who = "shared"
		}
		if lim = l.per[who]; lim == nil {
			lim = rate.NewLimiter(l.rate, l.burst)
			l.per[who] = lim
		}
	}
	l.mu.Unlock()
	return lim.Allow()
}

// Limits on the files the agent protocol reads: a token is one line, a PEM
// file a few certificates. They keep a wrong path (/dev/zero, a log file)
// from filling memory.
const (
	MaxTokenFile = 4 << 10
	MaxPEMFile   = 1 << 20
)

// ReadToken reads a token file, trimming surrounding white space; an empty
// file or a token shorter than MinTokenBytes is an error, and so is a file
// larger than MaxTokenFile (a *bounded.TooLargeError).
func ReadToken(path string) (string, error) {
	b, err := bounded.ReadFile(path, "token file", MaxTokenFile)
	if err != nil {
		return "", fmt.Errorf("agent: token: %w (a token is one line, e.g. from openssl rand -hex 32)", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("agent: token file %s is empty: %w", path, ErrNoToken)
	}
	if err := CheckToken("token file "+path, tok); err != nil {
		return "", err
	}
	return tok, nil
}

// ServerTLS builds a server tls.Config from a PEM certificate and key. With
// clientCA set, clients must present a certificate signed by it (mTLS).
func ServerTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("agent: TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pool, err := loadPool(clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLS builds a client tls.Config that trusts ca (the system roots when
// empty) and, with certFile and keyFile set, presents that certificate.
func ClientTLS(ca, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pool, err := loadPool(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("agent: TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// loadKeyPair is tls.LoadX509KeyPair with bounded reads.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := bounded.ReadFile(certFile, "certificate file", MaxPEMFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := bounded.ReadFile(keyFile, "key file", MaxPEMFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(cert, key)
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := bounded.ReadFile(path, "CA file", MaxPEMFile)
	if err != nil {
		return nil, fmt.Errorf("agent: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("agent: TLS CA %s: no PEM certificate found", path)
	}
	return pool, nil
}

// CertAllows reports whether the request may act as agent name: always
// without a verified client certificate (the token is the only identity),
// otherwise only when the certificate names the agent (CN or a DNS SAN).
func CertAllows(r *http.Request, name string) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return true
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if leaf.Subject.CommonName == name {
		return true
	}
	for _, n := range leaf.DNSNames {
		if n == name {
			return true
		}
	}
	return false
}
