package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
)

// TLSOptions configure the TLS layer: a handshake once TCP has connected.
// The zero value verifies the chain against the system's roots and the
// certificate against the endpoint's host, with no ALPN and no client
// certificate.
type TLSOptions struct {
	// ServerName is sent as SNI and is the name the certificate must
	// match; empty: the endpoint's host (an IP literal is matched against
	// the certificate's IP addresses and sends no SNI).
	ServerName string
	// NextProtos are offered by ALPN ("h2", "http/1.1").
	NextProtos []string
	// RootCAs verify the chain; nil: the system's roots.
	RootCAs *x509.CertPool
	// Certificates are offered when the server asks for a client
	// certificate (the first one).
	Certificates []tls.Certificate
	// InsecureSkipVerify completes the handshake whatever the certificate.
	// The chain is still verified, to report what would fail
	// (TLSResult.Verified false, Cause and Detail saying why), but the
	// layer counts as ready.
	InsecureSkipVerify bool
}

// ClientCertWait bounds the wait for a server's verdict on the client
// certificate given, after a TLS 1.3 handshake, when no application layer
// reads it: TLS 1.3 servers reject a client certificate (or its absence)
// after the client thinks the handshake is done. When the server asked
// and none was given, the wait lasts until the probe's deadline: a
// rejection is then the likely answer, and only a server whose client
// certificates are optional lets it pass.
const ClientCertWait = time.Second

// TLSResult is what the TLS layer learned.
type TLSResult struct {
	// Ready: the handshake completed and the certificate verified (or
	// verification was skipped on request).
	Ready bool `json:"ready"`
	// Cause is why not: one of the app package's TLS causes, or
	// app.WrongProtocol. With InsecureSkipVerify it names what
	// verification would have failed, though Ready.
	Cause  app.Cause `json:"cause,omitempty"`
	Detail string    `json:"detail,omitempty"`
	// Handshake is the time the handshake took.
	Handshake time.Duration `json:"handshake_ns"`
	// Version and CipherSuite were negotiated ("TLS 1.3"), ALPN the
	// protocol chosen by ALPN.
	Version     string `json:"version,omitempty"`
	CipherSuite string `json:"cipher_suite,omitempty"`
	ALPN        string `json:"alpn,omitempty"`
	// ServerName is the name sent and verified against.
	ServerName string `json:"server_name,omitempty"`
	// Verified: the chain led to a trusted root and named ServerName.
	Verified bool `json:"verified"`
	// Skipped: verification was skipped (InsecureSkipVerify).
	Skipped bool `json:"skipped,omitempty"`
	// The server's certificate, when it sent one.
	Subject   string    `json:"subject,omitempty"`
	Issuer    string    `json:"issuer,omitempty"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	IPs       []string  `json:"ips,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	// ClientCertRequested: the server asked for a client certificate.
	ClientCertRequested bool `json:"client_cert_requested,omitempty"`
}

// ExpiresIn is the time left until the certificate's NotAfter, from now;
// negative once expired, 0 when no certificate was seen.
func (t *TLSResult) ExpiresIn(now time.Time) time.Duration {
	if t == nil || t.NotAfter.IsZero() {
		return 0
	}
	return t.NotAfter.Sub(now)
}

// DaysLeft is ExpiresIn in whole days (rounded down).
func (t *TLSResult) DaysLeft(now time.Time) int {
	return int(t.ExpiresIn(now).Hours() / 24)
}

// Layers returns the layers a target asks for, with defaults: TLS for
// tls://, https://, grpcs://, rediss:// (SNI the host, ALPN the protocol's),
// and the application layer for its protocol. Callers add CAs, client
// certificates and expectations.
func Layers(t endpoint.Target) (*TLSOptions, *app.Request) {
	var tlsOpt *TLSOptions
	if t.TLS() {
		tlsOpt = &TLSOptions{}
		switch t.Protocol() {
		case "http":
			tlsOpt.NextProtos = []string{"http/1.1"}
		case "grpc":
			tlsOpt.NextProtos = []string{"h2"}
		}
	}
	if t.Protocol() == "" {
		return tlsOpt, nil
	}
	return tlsOpt, &app.Request{Protocol: t.Protocol(), Host: t.Endpoint.Host, TLS: t.TLS(),
		Path: t.Path, Service: t.Service, Database: t.Database, User: t.User}
}

// Ready reports whether the endpoint accepted the connection and every
// layer asked above it was ready.
func (r Result) Ready() bool {
	return r.Class == Open && (r.TLS == nil || r.TLS.Ready) && (r.App == nil || r.App.Ready)
}

// Layer names the layer that decided the result — the first that failed
// or was not ready ("tcp", "tls" or the application protocol), else the
// last one asked — with its cause (empty for TCP's, whose Class says it)
// and what it said.
func (r Result) Layer() (layer string, cause app.Cause, detail string) {
	switch {
	case r.Class != Open && r.Err != nil:
		var pe *Error
		if errors.As(r.Err, &pe) && pe.Op == "tls" {
			return "tls", "", r.Err.Error()
		}
		if errors.As(r.Err, &pe) && pe.Op == "app" && r.App != nil {
			return r.App.Protocol, "", r.Err.Error()
		}
		return "tcp", "", r.Err.Error()
	case r.TLS != nil && !r.TLS.Ready:
		return "tls", r.TLS.Cause, r.TLS.Detail
	case r.App != nil:
		return r.App.Protocol, r.App.Cause, r.App.Detail
	case r.TLS != nil:
		return "tls", r.TLS.Cause, r.TLS.Detail
	}
	return "tcp", "", string(r.Class)
}

// layers runs the TLS and application layers over conn, connected to ap;
// it returns the connection to hand on (the *tls.Conn after TLS), or nil
// when a layer failed (conn is then closed).
func layers(ctx context.Context, conn net.Conn, ap netip.AddrPort, ep endpoint.Endpoint, opt Options, r *Result) net.Conn {
	if opt.TLS != nil {
		tc, err := handshake(ctx, conn, ap, ep, opt, r)
		if err != nil {
			conn.Close()
			r.fail("tls", ap.String(), err)
			return nil
		}
		if !r.TLS.Ready {
			conn.Close()
			return nil
		}
		conn = tc
	}
	if opt.App != nil {
		req := *opt.App
		req.Addr = ap
		if req.Host == "" && ep.Host != "" {
			req.Host = ep.Host
		}
		res, err := app.Check(ctx, conn, req)
		r.App = &res
		if err != nil {
			conn.Close()
			if r.TLS != nil && tlsAlert(err, r.TLS) {
				// A TLS 1.3 server's verdict on the client certificate
				// comes with the first read: the TLS layer failed.
				r.App = nil
				return nil
			}
			r.fail("app", ap.String(), err)
			if r.TLS == nil && (r.Class == ClosedByPeer || r.Class == Reset) {
				tlsInstead(ctx, ap, ep, opt, r)
			}
			return nil
		}
		if !res.Ready {
			conn.Close()
			return nil
		}
	}
	return conn
}

// handshake runs the TLS layer, filling r.TLS. The error is an I/O
// failure; what the handshake decided is r.TLS.
func handshake(ctx context.Context, conn net.Conn, ap netip.AddrPort, ep endpoint.Endpoint, opt Options, r *Result) (net.Conn, error) {
	to := opt.TLS
	name := to.ServerName
	if name == "" {
		name = ep.Host
		if name == "" {
			name = ap.Addr().String()
		}
	}
	tr := &TLSResult{ServerName: name}
	r.TLS = tr
	conf := &tls.Config{ServerName: name, NextProtos: to.NextProtos, RootCAs: to.RootCAs,
		InsecureSkipVerify: true, // verified below, to report what fails even when skipping
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			tr.ClientCertRequested = true
			if len(to.Certificates) > 0 {
				return &to.Certificates[0], nil
			}
			return &tls.Certificate{}, nil
		}}
	var verifyErr error
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		verifyErr = verify(cs, conf)
		if verifyErr != nil && !to.InsecureSkipVerify {
			return verifyErr
		}
		return nil
	}
	tc := tls.Client(conn, conf)
	start := time.Now()
	err := tc.HandshakeContext(ctx)
	tr.Handshake = time.Since(start)
	cs := tc.ConnectionState()
	if certs := cs.PeerCertificates; len(certs) > 0 {
		describeCert(tr, certs[0])
	}
	if err == nil {
		tr.Version, tr.CipherSuite, tr.ALPN = tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), cs.NegotiatedProtocol
		tr.Verified, tr.Skipped = verifyErr == nil, to.InsecureSkipVerify
		tr.Ready = true
		if verifyErr != nil {
			tlsCause(verifyErr, tr, opt.TLS, time.Now())
			tr.Ready = true
			tr.Detail = "verification skipped (--insecure): " + tr.Detail
		}
		if tr.ClientCertRequested && cs.Version == tls.VersionTLS13 && opt.App == nil {
			if b := awaitVerdict(ctx, tc, tr, len(to.Certificates) > 0); len(b) > 0 {
				// The server spoke first: hand its byte on.
				return &replayConn{Conn: tc, pending: b}, nil
			}
		}
		return tc, nil
	}
	if tlsCause(err, tr, opt.TLS, time.Now()) {
		return nil, nil
	}
	if c, _ := Classify(err); c == ClosedByPeer || c == Reset {
		err = fmt.Errorf("during the TLS handshake (the port may not speak TLS): %w", err)
	}
	return nil, err
}

// awaitVerdict reads after a TLS 1.3 handshake in which the server asked
// for a client certificate (see ClientCertWait; gave: one was given): its
// rejection comes as an alert then. What the server sent meanwhile (a
// server that speaks first) is returned.
func awaitVerdict(ctx context.Context, tc *tls.Conn, tr *TLSResult, gave bool) []byte {
	deadline := time.Now().Add(ClientCertWait)
	if d, ok := ctx.Deadline(); ok && (d.Before(deadline) || !gave) {
		deadline = d
	}
	tc.SetReadDeadline(deadline)
	defer tc.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := tc.Read(b[:])
	tlsAlert(err, tr)
	return b[:n]
}

// replayConn is a connection whose first bytes were read already.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// tlsAlert fails tr when err is an alert the server sent; it reports
// whether it was one.
func tlsAlert(err error, tr *TLSResult) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" {
		return false
	}
	tr.Ready = false
	tr.Cause = app.TLSFailed
	tr.Detail = fmt.Sprintf("the server sent the TLS alert %q", strings.TrimPrefix(oe.Err.Error(), "tls: "))
	if tr.ClientCertRequested {
		tr.Detail += " after asking for a client certificate: give one it trusts (--cert, --key)"
	}
	return true
}

// verify checks the chain and name as crypto/tls would.
func verify(cs tls.ConnectionState, conf *tls.Config) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	vo := x509.VerifyOptions{Roots: conf.RootCAs, DNSName: conf.ServerName, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		vo.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(vo); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

func describeCert(tr *TLSResult, c *x509.Certificate) {
	tr.Subject, tr.Issuer = c.Subject.String(), c.Issuer.String()
	tr.DNSNames = c.DNSNames
	tr.IPs = nil
	for _, ip := range c.IPAddresses {
		tr.IPs = append(tr.IPs, ip.String())
	}
	tr.NotBefore, tr.NotAfter = c.NotBefore, c.NotAfter
}

// tlsCause sets tr's cause for a handshake error that is not an I/O
// failure, and reports whether it was one.
func tlsCause(err error, tr *TLSResult, to *TLSOptions, now time.Time) bool {
	var (
		ce  *tls.CertificateVerificationError
		inv x509.CertificateInvalidError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		rh  tls.RecordHeaderError
	)
	roots := "the system's roots"
	if to.RootCAs != nil {
		roots = "the CA file given (--ca)"
	}
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		tr.Cause = app.TLSExpired
		c := inv.Cert
		if now.Before(c.NotBefore) {
			tr.Detail = fmt.Sprintf("the certificate of %s is not valid before %s (in %s): the server's clock "+
				"or the certificate's issuer is ahead", certName(c), c.NotBefore.UTC().Format(time.RFC3339), days(c.NotBefore.Sub(now)))
		} else {
			tr.Detail = fmt.Sprintf("the certificate of %s expired on %s (%s ago): renew it and reload the server",
				certName(c), c.NotAfter.UTC().Format(time.RFC3339), days(now.Sub(c.NotAfter)))
		}
	case errors.As(err, &ua):
		tr.Cause = app.TLSUntrusted
		issuer := "an unknown issuer"
		if ua.Cert != nil {
			issuer = fmt.Sprintf("%q", ua.Cert.Issuer.String())
			if ua.Cert.Issuer.String() == ua.Cert.Subject.String() {
				issuer += " (it is self-signed)"
			}
		}
		tr.Detail = fmt.Sprintf("the certificate is issued by %s, which is not among %s: give the CA (--ca FILE) "+
			"or have the server send its full chain", issuer, roots)
	case errors.As(err, &he):
		tr.Cause = app.TLSNameMismatch
		names := append(append([]string{}, he.Certificate.DNSNames...), tr.IPs...)
		tr.Detail = fmt.Sprintf("the certificate names %s, not %s: dial a name it has (or --sni NAME), or reissue it with %s",
			orNone(names), he.Host, he.Host)
	case errors.As(err, &inv):
		tr.Cause = app.TLSUntrusted
		tr.Detail = fmt.Sprintf("the chain does not verify against %s: %v", roots, inv)
	case errors.As(err, &ce):
		tr.Cause = app.TLSUntrusted
		tr.Detail = fmt.Sprintf("the certificate does not verify against %s: %v", roots, ce.Err)
	case errors.As(err, &rh):
		tr.Cause = app.WrongProtocol
		k := app.Sniff(rh.RecordHeader[:])
		tr.Detail = fmt.Sprintf("sent a TLS ClientHello, the server answered %s: %s: the port does not speak TLS "+
			"(use the plain scheme: http://, grpc://, tcp://)", app.Quote(rh.RecordHeader[:]), k.Describe())
	case tlsAlert(err, tr):
	default:
		var ne net.Error
		if c, _ := Classify(err); errors.As(err, &ne) || c != LocalError || errors.Is(err, context.Canceled) {
			return false
		}
		// What our side refused: no shared version or cipher suite.
		tr.Cause = app.TLSFailed
		tr.Detail = fmt.Sprintf("the handshake failed: %v", err)
	}
	tr.Ready = false
	return true
}

func certName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

func days(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "no names"
	}
	return strings.Join(names, ", ")
}

// RedirectDialer returns what app.Request.Redirect wants: connections for
// the targets of HTTP redirects, made as opt makes them (its dialer,
// source, timeout), in TLS for https with opt.TLS's roots and client
// certificates, verified against the redirect's host.
func RedirectDialer(opt Options) func(ctx context.Context, scheme, hostport string) (net.Conn, error) {
	return func(ctx context.Context, scheme, hostport string) (net.Conn, error) {
		ep, err := endpoint.ParseEndpoint(hostport, 0)
		if err != nil {
			return nil, err
		}
		o := opt
		o.App, o.TLS = nil, nil
		if scheme == "https" {
			t := TLSOptions{NextProtos: []string{"http/1.1"}}
			if opt.TLS != nil {
				t.RootCAs, t.Certificates, t.InsecureSkipVerify = opt.TLS.RootCAs, opt.TLS.Certificates, opt.TLS.InsecureSkipVerify
			}
			o.TLS = &t
		}
		conn, r := Dial(ctx, ep, o)
		if conn == nil {
			if r.Err != nil {
				return nil, r.Err
			}
			_, cause, detail := r.Layer()
			return nil, fmt.Errorf("%s: %s", cause, detail)
		}
		return conn, nil
	}
}

// Upgrade runs the layers opt asks for (TLS, then App) over conn, a
// connection already made to ep (by a dialer of the caller's), within
// opt.Timeout. It returns the connection to use (the *tls.Conn after TLS)
// when every layer is ready; otherwise nil, conn closed, and the result
// says which layer failed and why (Ready, Layer). Result.RTT is zero: the
// connect was not the probe's.
func Upgrade(ctx context.Context, conn net.Conn, ep endpoint.Endpoint, opt Options) (net.Conn, Result) {
	var ap netip.AddrPort
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		ap = ta.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	r := Result{Endpoint: ep, Addr: ap, Class: Open}
	ctx, cancel := context.WithTimeout(ctx, opt.timeout())
	defer cancel()
	return layers(ctx, conn, ap, ep, opt, &r), r
}

// tlsInstead asks, when a plain request was answered by a close or a reset
// without a byte (what Go's TLS servers do to anything but a ClientHello or
// an HTTP/1 request), whether the port speaks TLS: a handshake, unverified,
// on a second connection. When it completes, the answer was wrong-protocol,
// and r says so (class Open, App.Cause WrongProtocol).
func tlsInstead(ctx context.Context, ap netip.AddrPort, ep endpoint.Endpoint, opt Options, r *Result) {
	dial := opt.Dial
	if dial == nil {
		dial = LocalDialer(opt.Source, opt.Interface)
	}
	conn, err := dial(ctx, opt.network(), ap.String())
	if err != nil {
		return
	}
	defer conn.Close()
	name := ep.Host
	if name == "" {
		name = ap.Addr().String()
	}
	tc := tls.Client(conn, &tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if tc.HandshakeContext(ctx) != nil {
		return
	}
	cs := tc.ConnectionState()
	proto := r.App.Protocol
	secure := map[string]string{"http": "https://", "grpc": "grpcs://", "redis": "rediss://"}[proto]
	if secure == "" {
		secure = "a TLS scheme"
	}
	r.App.Cause, r.App.State = app.WrongProtocol, string(app.KindTLS)
	r.App.Detail = fmt.Sprintf("the server %s the plain %s request without a byte in answer, and a TLS handshake on a "+
		"second connection completed (%s): the port speaks TLS: use %s", map[Class]string{ClosedByPeer: "closed", Reset: "reset"}[r.Class],
		proto, tls.VersionName(cs.Version), secure)
	r.Class, r.Errno, r.Err = Open, 0, nil
}
