// Package app asks a server, over a connection that is already open (plain
// TCP, or TLS after the handshake), whether the application behind the port
// is ready: the layer above TCP that a kernel's accept cannot answer. A
// kernel accepts before the server is ready, and so does every proxy in
// front of it.
//
// Each protocol is one Func, in a file named after it (HTTP in http.go, gRPC's
// standard health check in grpc.go, and the database protocols), registered by name with register from that
// file's init, so protocols are added without touching the others:
//
//	func Check(ctx context.Context, conn net.Conn, req Request) (Result, error)
//
// finds the protocol's Func by req.Protocol and runs it. The contract every
// Func keeps:
//
//   - It writes and reads conn only until ctx's deadline (it sets conn's
//     deadline from ctx and ends at once when ctx is cancelled). It never
//     closes conn: its caller owns it.
//   - It returns an error only for an I/O failure (the peer reset or closed
//     the connection, the deadline passed before an answer): what the
//     server said, however bad, is a Result with a Cause, not an error. The
//     caller classifies the error as it classifies a TCP failure.
//   - Result.Ready says whether the application answered as ready; when it
//     did not, Result.Cause is one of the stable Cause ids below and
//     Result.Detail says what the server answered, in words a user can act on.
//   - Result.FirstByte is the time from the request's first byte written
//     to the answer's first byte read.
//   - It answers the first bytes that belong to another protocol (a TLS
//     record to an HTTP request) with Cause WrongProtocol, naming what they
//     look like (Sniff).
//   - It stays harmless to the server it checks: one connection, no
//     credentials beyond those given, ended the way the protocol wants (a
//     MySQL server that sees a connect-and-close counts an error against
//     the checking host).
//
// The TLS layer is the caller's (package probe): it hands a Func the
// *tls.Conn after the handshake, and uses this package's TLS causes.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"
)

// Cause is a stable id for why an endpoint that accepted TCP is not usable
// above it. The doctor reports these ids; they never change meaning.
type Cause string

const (
	// TLSExpired: the server's certificate is expired or not yet valid.
	TLSExpired Cause = "tls-expired"
	// TLSUntrusted: the chain does not lead to a trusted root (unknown CA,
	// self-signed).
	TLSUntrusted Cause = "tls-untrusted"
	// TLSNameMismatch: the certificate is not valid for the name dialled.
	TLSNameMismatch Cause = "tls-name-mismatch"
	// TLSFailed: the handshake failed otherwise: an alert (a client
	// certificate required, no shared version or cipher), quoted.
	TLSFailed Cause = "tls-failed"
	// WrongProtocol: the server speaks another protocol than the one asked
	// (plain HTTP on a TLS port, TLS on a plain one), known by its first bytes.
	WrongProtocol Cause = "wrong-protocol"
	// NotReady: the application says it is starting, loading, shutting
	// down or in recovery, or not serving.
	NotReady Cause = "not-ready"
	// AppError: the application answered with an error (HTTP 5xx, an
	// unexpected status or body, a database error).
	AppError Cause = "app-error"
	// TooManyConnections: the server refuses for its connection limit.
	TooManyConnections Cause = "too-many-connections"
	// HostBlocked: the server refuses this host after too many errors
	// (MySQL's max_connect_errors).
	HostBlocked Cause = "host-blocked"
)

// Causes lists every cause id, in the order the doctor's ladder meets them.
var Causes = []Cause{TLSExpired, TLSUntrusted, TLSNameMismatch, TLSFailed, WrongProtocol,
	NotReady, AppError, TooManyConnections, HostBlocked}

// Request is what a protocol check is asked. Each protocol reads the fields
// it needs; the zero value of each asks the protocol's default.
type Request struct {
	// Protocol names the Func: "http", "grpc", or a database protocol.
	Protocol string
	// Host is the name the server knows itself by: HTTP's Host header,
	// gRPC's :authority. Empty: Addr's address.
	Host string
	// Addr is the address conn is connected to, for messages and defaults.
	Addr netip.AddrPort
	// TLS says conn is a *tls.Conn whose handshake is done (https, grpcs):
	// HTTP and gRPC then name the https scheme.
	TLS bool
	// Path is what HTTP asks for, with its query ("/healthz?full=1");
	// empty: "/".
	Path string
	// Service is the gRPC health service name; empty asks for the server
	// as a whole.
	Service string
	// Database and User are a database URL's (no password is ever kept).
	Database, User string
	// ExpectStatus is the set of HTTP statuses that mean ready; empty:
	// 200-399 (a redirect not followed is an answer, not a failure).
	ExpectStatus StatusSet
	// ExpectBody, when set, must appear in the HTTP body's first
	// MaxBody bytes.
	ExpectBody string
	// Redirect, when set, makes HTTP follow redirects (at most
	// MaxRedirects): it opens a connection, TCP and TLS as the URL says,
	// to the redirect's target. Nil: redirects are not followed.
	Redirect func(ctx context.Context, scheme, hostport string) (net.Conn, error)
}

// Result is what the application layer learned.
type Result struct {
	// Protocol is the Func that asked ("http", "grpc", ...).
	Protocol string `json:"protocol"`
	// Ready: the application answered as ready.
	Ready bool `json:"ready"`
	// Cause is why not, when not Ready; empty when Ready.
	Cause Cause `json:"cause,omitempty"`
	// State is the protocol's own word for what it answered: "200 OK",
	// "SERVING", "accepting", "PONG", "starting up".
	State string `json:"state,omitempty"`
	// Version is the server's version, when it tells (an HTTP Server
	// header, a database greeting).
	Version string `json:"version,omitempty"`
	// Detail says what the server answered, for a user to act on.
	Detail string `json:"detail,omitempty"`
	// FirstByte is the time from the request written to the answer's
	// first byte read.
	FirstByte time.Duration `json:"first_byte_ns,omitempty"`
	// Total is the time the whole check took, redirects followed included.
	Total time.Duration `json:"total_ns,omitempty"`

	// HTTP is HTTP's own answer; nil for other protocols.
	HTTP *HTTPResult `json:"http,omitempty"`
}

// HTTPResult is what an HTTP answer said beyond its status line.
type HTTPResult struct {
	Status int    `json:"status"`
	Server string `json:"server,omitempty"` // the Server header
	Via    string `json:"via,omitempty"`    // the Via header: a proxy answered
	// Proxy: the answer (502, 503 or 504) came from a reverse proxy whose
	// backend did not answer, told by its Server or Via header or its body.
	Proxy bool `json:"proxy,omitempty"`
	// Location is where a redirect not followed points; Redirects lists
	// the URLs followed, in order.
	Location  string   `json:"location,omitempty"`
	Redirects []string `json:"redirects,omitempty"`
}

// Func checks one protocol over conn; see the package doc for its contract.
type Func func(ctx context.Context, conn net.Conn, req Request) (Result, error)

var funcs = map[string]Func{}

// register makes f the Func for protocol; each protocol's file calls it
// from init. Registering a name twice is a programming error.
func register(protocol string, f Func) {
	if _, dup := funcs[protocol]; dup {
		panic("app: protocol " + protocol + " registered twice")
	}
	funcs[protocol] = f
}

// Protocols lists the protocols Check knows, sorted.
func Protocols() []string {
	names := make([]string, 0, len(funcs))
	for n := range funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownProtocol is Check's error for a Request.Protocol no Func has.
var ErrUnknownProtocol = errors.New("app: unknown protocol")

// Check runs req.Protocol's Func over conn, within ctx. The error is an I/O
// failure (or ErrUnknownProtocol); see the package doc.
func Check(ctx context.Context, conn net.Conn, req Request) (Result, error) {
	f, ok := funcs[req.Protocol]
	if !ok {
		return Result{Protocol: req.Protocol}, fmt.Errorf("%w %q (known: %v)", ErrUnknownProtocol, req.Protocol, Protocols())
	}
	start := time.Now()
	stop := Deadline(ctx, conn)
	defer stop()
	r, err := f(ctx, conn, req)
	r.Protocol = req.Protocol
	if r.Total == 0 {
		r.Total = time.Since(start)
	}
	if err != nil {
		r.Ready = false
		return r, &Error{Protocol: req.Protocol, Addr: req.Addr, Err: err}
	}
	return r, nil
}

// Deadline sets conn's deadline to ctx's and makes ctx's cancellation end
// any read or write at once. The returned func undoes both; call it before
// handing conn on.
func Deadline(ctx context.Context, conn net.Conn) (stop func()) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	cancel := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	return func() {
		cancel()
		conn.SetDeadline(time.Time{})
	}
}

// Error is an I/O failure during a protocol check: the connection broke or
// the deadline passed before the application answered. It unwraps to the
// I/O error (*net.OpError, io.EOF, os.ErrDeadlineExceeded).
type Error struct {
	Protocol string
	Addr     netip.AddrPort
	Err      error
}

func (e *Error) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("%s %s: %v", e.Protocol, e.Addr, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Protocol, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
