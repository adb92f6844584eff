package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/probe"
)

// The causes past TCP: the TLS and application layers (package app's ids).
const (
	TLSExpired         = Cause(app.TLSExpired)         // the certificate expired or is not yet valid
	TLSUntrusted       = Cause(app.TLSUntrusted)       // the chain leads to no trusted root
	TLSNameMismatch    = Cause(app.TLSNameMismatch)    // the certificate does not name the host dialled
	TLSFailed          = Cause(app.TLSFailed)          // the handshake failed: an alert, no shared version
	WrongProtocol      = Cause(app.WrongProtocol)      // the port speaks another protocol (TLS vs plain)
	NotReady           = Cause(app.NotReady)           // the application says it is starting, loading, not serving
	AppError           = Cause(app.AppError)           // the application answers with an error (HTTP 5xx ...)
	TooManyConnections = Cause(app.TooManyConnections) // the server refuses for its connection limit
	HostBlocked        = Cause(app.HostBlocked)        // the server blocks this host (MySQL max_connect_errors)
)

// layerCauses are the causes a layer above TCP names: an address with one
// is not usable, though it connects.
var layerCauses = []Cause{TLSExpired, TLSUntrusted, TLSNameMismatch, TLSFailed, WrongProtocol,
	NotReady, AppError, TooManyConnections, HostBlocked}

// LayersCheck walks past TCP: on every address that connected, the TLS
// handshake and the application's answer the target asks for
// (Options.TLS, Options.App). Its findings come from the client alone (what
// the server answered), so they hold from any vantage point.
var LayersCheck = CheckFunc{
	CheckName: "layers",
	ReadsFrom: []string{"dns", "tcp"}, // the addresses, and which connected
	Fn:        checkLayers,
}

func checkLayers(ctx context.Context, s *State) CheckResult {
	if s.Options.TLS == nil && s.Options.App == nil {
		return CheckResult{Status: Skip, Detail: "no layer above TCP asked (a URL asks: tls://, https://, grpc://, postgres:// ...)"}
	}
	if r, ok := needAddrs(s); !ok {
		return r
	}
	opt := probe.Options{Timeout: s.Options.timeout(), Network: s.Options.Network, Dial: s.Options.Dial,
		Source: s.Options.Source, Interface: s.Options.Interface}
	if t := s.Options.TLS; t != nil {
		tc := *t
		if tc.ServerName == "" {
			tc.ServerName = s.Target.Host
		}
		opt.TLS = &tc
	}
	if a := s.Options.App; a != nil {
		ac := *a
		if ac.Host == "" {
			ac.Host = s.Target.Host
		}
		opt.App = &ac
	}
	s.Layers = make([]*probe.Result, len(s.Addrs))
	each(len(s.Addrs), func(i int) {
		if s.Primary(i) != probe.Open {
			return
		}
		conn, r := probe.DialAddr(ctx, s.addrPort(i), opt)
		if conn != nil {
			conn.Close()
		}
		s.Layers[i] = &r
	})
	res := CheckResult{Status: Pass}
	var parts []string
	for i, r := range s.Layers {
		if r == nil {
			continue
		}
		parts = append(parts, s.prefix(i)+describeLayers(r, s.Options.WarnDays))
		if !r.Ready() {
			res.Status = Fail
			res.Findings = append(res.Findings, layerFindings(s, i, r)...)
		}
	}
	if len(parts) == 0 {
		return CheckResult{Status: Skip, Detail: "no address connected: nothing to ask above TCP"}
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}

// describeLayers says what each layer answered, in one line.
func describeLayers(r *probe.Result, warnDays int) string {
	var parts []string
	if t := r.TLS; t != nil {
		switch {
		case t.Version != "":
			p := fmt.Sprintf("%s in %s", t.Version, round(t.Handshake))
			if t.ALPN != "" {
				p += " (ALPN " + t.ALPN + ")"
			}
			if !t.NotAfter.IsZero() {
				days := t.DaysLeft(time.Now())
				p += fmt.Sprintf(", certificate for %s valid until %s (%d days)", t.ServerName, t.NotAfter.UTC().Format(time.DateOnly), days)
				if warnDays > 0 && days < warnDays {
					p += fmt.Sprintf(" — expires within --warn-days %d: renew it", warnDays)
				}
			}
			if t.Skipped {
				p += ", verification SKIPPED (--insecure)"
				if t.Cause != "" {
					p += ": " + string(t.Cause)
				}
			}
			parts = append(parts, p)
		case t.Cause != "":
			parts = append(parts, fmt.Sprintf("TLS: %s after %s", t.Cause, round(t.Handshake)))
		}
	}
	if a := r.App; a != nil {
		p := a.Protocol + ": " + a.State
		if a.State == "" {
			p = a.Protocol + ": " + string(a.Cause)
		}
		if a.FirstByte > 0 {
			p += fmt.Sprintf(", first byte in %s", round(a.FirstByte))
		}
		parts = append(parts, p)
	}
	if r.Class != probe.Open {
		layer, _, _ := r.Layer()
		parts = append(parts, fmt.Sprintf("%s: %s", layer, r.Class))
	}
	return strings.Join(parts, "; ")
}

// layerFindings explains why the layers of address i were not ready.
func layerFindings(s *State, i int, r *probe.Result) []Finding {
	ap := s.addrPort(i)
	layer, cause, detail := r.Layer()
	f := Finding{Cause: Cause(cause), Confidence: Confirmed, Addr: s.label(i)}
	name := map[string]string{"tls": "TLS", "http": "HTTP", "grpc": "gRPC"}[layer]
	if name == "" {
		name = layer
	}
	if r.Class != probe.Open {
		// The layer broke off: what TCP's classes say, past the handshake.
		f.Evidence = fmt.Sprintf("connected to %s in %s, then the %s layer: %v", ap, round(r.RTT), name, r.Err)
		switch r.Class {
		case probe.Timeout:
			f.Cause, f.Issue = ServerHung, fmt.Sprintf("The server accepts connections but does not answer %s", name)
			f.Fix = "the process is stuck or overloaded: look at its logs and threads; or the port belongs to another service that waits for the client to speak first"
		case probe.Reset:
			f.Cause, f.Issue = ResetByPeer, fmt.Sprintf("The server resets the connection during %s", name)
			f.Fix = "look at the server's logs: it rejects this client or crashes on the request"
		case probe.ClosedByPeer:
			f.Cause, f.Issue = ClosedByPeer, fmt.Sprintf("The server closes the connection during %s", name)
			f.Fix = "look at the server's logs: it rejects this client (allow-list, connection limit), or the port speaks another protocol"
			if layer == "tls" {
				f.Fix = "the port may not speak TLS (try the plain scheme: tcp://, http://, grpc://), or the server refuses this client's TLS (versions, SNI): look at its logs"
			}
		default:
			f.Cause, f.Issue = Cause(r.Class), fmt.Sprintf("The %s layer failed: %s", name, r.Class)
			f.Fix = "see the evidence"
		}
		return []Finding{f}
	}
	f.Evidence = fmt.Sprintf("connected to %s in %s; %s: %s", ap, round(r.RTT), name, detail)
	switch f.Cause {
	case TLSExpired:
		f.Issue = "The server's TLS certificate has expired"
		now := time.Now()
		if t := r.TLS; t != nil && now.Before(t.NotBefore) {
			f.Issue = "The server's TLS certificate is not valid yet"
		}
		f.Fix = "renew the certificate and reload the server (certbot renew, your CA); a certificate not yet valid means a clock is wrong: compare this host's and the issuer's (timedatectl)"
		if t := r.TLS; t != nil {
			if d := min(absDur(now.Sub(t.NotAfter)), absDur(now.Sub(t.NotBefore))); d < 24*time.Hour {
				// A day's clock skew on this host would explain it too.
				f.Confidence = Likely
				f.Evidence += fmt.Sprintf(" (this host's clock, %s, is within %s of the limit: a wrong clock here would explain it too)",
					now.UTC().Format(time.RFC3339), round(d))
			}
		}
	case TLSUntrusted:
		f.Issue = "The server's certificate is not trusted"
		f.Fix = "give the CA that issued it (--ca FILE) or add it to the system's trust store; if an intermediate is missing, configure the server to send its full chain"
	case TLSNameMismatch:
		f.Issue = fmt.Sprintf("The server's certificate does not name %s", r.TLS.ServerName)
		f.Fix = "dial a name the certificate has (or set it with --sni), or reissue the certificate with this name"
	case TLSFailed:
		f.Issue = "The TLS handshake fails"
		f.Fix = "see the alert: a client certificate required wants --cert and --key; a protocol version or handshake failure means no TLS version or cipher both sides allow: enable TLS 1.2 or 1.3 on the server"
		if r.TLS != nil && r.TLS.ClientCertRequested {
			f.Issue = "The server wants a client certificate it trusts"
			f.Fix = "give a certificate issued by a CA the server trusts (--cert FILE --key FILE)"
		}
	case WrongProtocol:
		f.Issue = fmt.Sprintf("The port does not speak %s", wantedProtocol(layer, r))
		f.Fix = "use the scheme the port speaks: https://, grpcs:// or tls:// for a TLS port, http:// or grpc:// for a plain one; or another service holds the port"
		if strings.Contains(detail, "no protocol reach knows") || strings.Contains(detail, "which is not") {
			f.Confidence = Likely // unknown bytes: not another protocol for sure, a broken server would do it too
		}
	case NotReady:
		f.Issue = fmt.Sprintf("The application is up but not ready (%s)", stateOf(r))
		f.Fix = "wait until it has started (reach wait URL -- CMD), or read its logs for why it stays so"
	case AppError:
		f.Issue = fmt.Sprintf("The application answers with an error (%s)", stateOf(r))
		f.Fix = "read the application's logs for the error; the network and the port are fine"
		if h := r.App.HTTP; h != nil && h.Proxy {
			f.Issue = fmt.Sprintf("A reverse proxy answers %s: the backend behind it is down", stateOf(r))
			f.Fix = "start or fix the backend the proxy forwards to (its upstream/backend configuration names it); the proxy itself works"
		} else if h != nil && h.Status < 500 {
			f.Issue = fmt.Sprintf("The application answers %s, not what was expected", stateOf(r))
			f.Fix = "check the URL's path, or the expected status and body (--expect-status, --expect-body)"
		}
	case TooManyConnections:
		f.Issue = "The server refuses: it has too many connections"
		f.Fix = "close idle connections or pool them; raise the server's connection limit if the load is real"
	case HostBlocked:
		f.Issue = "The server blocks this host after too many failed connections"
		f.Fix = "unblock it (MySQL: FLUSH HOSTS, or mysqladmin flush-hosts) and check it with a protocol-level check (mysql://), not a bare TCP connect"
	default:
		f.Cause, f.Issue, f.Fix = Unknown, fmt.Sprintf("The %s layer is not ready", name), "see the evidence"
	}
	return []Finding{f}
}

func wantedProtocol(layer string, r *probe.Result) string {
	if layer == "tls" {
		return "TLS"
	}
	if r.TLS != nil {
		return strings.ToUpper(layer) + " over TLS"
	}
	return "plain " + strings.ToUpper(layer)
}

func stateOf(r *probe.Result) string {
	if r.App != nil && r.App.State != "" {
		return r.App.State
	}
	return "no state"
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
