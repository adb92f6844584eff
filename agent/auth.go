package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/time/rate"
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

// tokenEqual compares in constant time. Hashing first makes the time
// independent of the lengths too.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// RequireToken wraps next so that only requests carrying the bearer token
// reach it: the hub serves the protocol behind it. token is asked on each
// request, so a reload can change it.
func RequireToken(token func() string, next http.Handler) http.Handler {
	return guard(token, nil, next)
}

// guard wraps next so that only requests with the bearer token (and, when
// limit is set, within its rate) reach it. Refusals carry no detail beyond
// the status, so a prober learns nothing but "no".
func guard(token func() string, limit *rate.Limiter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit != nil && !limit.Allow() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !tokenEqual(got, token()) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reach"`)
			http.Error(w, "unauthorized: send the shared token as Authorization: Bearer",
				http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ReadToken reads a token file, trimming surrounding white space; an empty
// file or a token shorter than MinTokenBytes is an error.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("agent: token: %w", err)
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
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
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
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("agent: TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
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
