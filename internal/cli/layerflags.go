package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/bounded"
	"github.com/reach-tools/reach/probe"
)

// maxPEM bounds the certificate, key and CA files the layer flags read.
const maxPEM = 1 << 20

// layerFlags are the options of the layers above TCP that a URL target
// names (tls://, https://, grpc(s)://, ...): check, connect and wait share them.
type layerFlags struct {
	ca, cert, key, sni string
	insecure           bool
	expectStatus       string
	expectBody         string
	follow             bool
	warnDays           int
}

// layerHelp is the flags' part of a command's long help.
const layerHelp = `A target may be a URL naming the layer to check above TCP: tcp://HOST:PORT
(as HOST:PORT), tls://HOST[:443] (a TLS handshake), http://HOST[:80]/PATH,
https://HOST[:443]/PATH (one GET: the status, and --expect-body),
grpc://HOST[:50051][/SERVICE] and grpcs://HOST[:443][/SERVICE] (the standard
grpc.health.v1 Check), postgres://, mysql://, redis:// (and rediss://) when
those protocols are built in. TLS verifies the chain against the system's
roots (or --ca FILE) and the certificate's names against the host (or
--sni NAME); --cert and --key give a client certificate. --insecure SKIPS
verification: the handshake completes whatever the certificate, and what
verification would have failed is still reported. Redirects are answers
unless --follow-redirects. Causes past TCP: tls-expired, tls-untrusted,
tls-name-mismatch, tls-failed, wrong-protocol (plain HTTP on a TLS port, TLS
on a plain one), not-ready, app-error (HTTP 5xx, saying when a reverse proxy
answered for a backend that is down), too-many-connections, host-blocked.`

func (f *layerFlags) add(fs *pflag.FlagSet) {
	f.addTLS(fs)
	fs.StringVar(&f.expectStatus, "expect-status", "", "HTTP statuses that mean ready, e.g. 200,204 or 2xx (default 200-399)")
	fs.StringVar(&f.expectBody, "expect-body", "", "text the HTTP body must contain to be ready")
	fs.BoolVar(&f.follow, "follow-redirects", false, "follow HTTP redirects (at most 10) instead of taking them as the answer")
	fs.IntVar(&f.warnDays, "warn-days", 0, "say when a TLS certificate expires within this many `DAYS`")
}

// addTLS adds the TLS layer's flags alone (connect's).
func (f *layerFlags) addTLS(fs *pflag.FlagSet) {
	fs.StringVar(&f.ca, "ca", "", "verify TLS servers against the CA certificates in this PEM `FILE` instead of the system's roots")
	fs.StringVar(&f.cert, "cert", "", "client certificate (PEM `FILE`) for TLS servers that ask for one; with --key")
	fs.StringVar(&f.key, "key", "", "the client certificate's private key (PEM `FILE`)")
	fs.StringVar(&f.sni, "sni", "", "server `NAME` to send (SNI) and verify the certificate against, instead of the target's host")
	fs.BoolVar(&f.insecure, "insecure", false, "SKIP TLS certificate verification (expired, untrusted, wrong name all pass; still reported)")
}

// layers makes the layers target asks for, with the flags; flags that no
// target can use are a usage error (checked by check).
func (f *layerFlags) layers(t endpoint.Target) (*probe.TLSOptions, *app.Request, error) {
	tlsOpt, req := probe.Layers(t)
	if tlsOpt != nil {
		tlsOpt.ServerName = f.sni
		tlsOpt.InsecureSkipVerify = f.insecure
		if f.ca != "" {
			b, err := bounded.ReadFile(f.ca, "CA file", maxPEM)
			if err != nil {
				return nil, nil, usageErrorf("--ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, nil, usageErrorf("--ca %s: no PEM certificate found in it", f.ca)
			}
			tlsOpt.RootCAs = pool
		}
		if f.cert != "" {
			certPEM, err := bounded.ReadFile(f.cert, "certificate file", maxPEM)
			if err != nil {
				return nil, nil, usageErrorf("--cert: %v", err)
			}
			keyPEM, err := bounded.ReadFile(f.key, "key file", maxPEM)
			if err != nil {
				return nil, nil, usageErrorf("--key: %v", err)
			}
			c, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return nil, nil, usageErrorf("--cert %s --key %s: %v", f.cert, f.key, err)
			}
			tlsOpt.Certificates = []tls.Certificate{c}
		}
	}
	if req != nil && req.Protocol == "http" {
		if f.expectStatus != "" {
			set, err := app.ParseStatusSet(f.expectStatus)
			if err != nil {
				return nil, nil, usageErrorf("--expect-status: %v", err)
			}
			req.ExpectStatus = set
		}
		req.ExpectBody = f.expectBody
		if f.follow {
			req.Redirect = probe.RedirectDialer(probe.Options{TLS: tlsOpt})
		}
	}
	return tlsOpt, req, nil
}

// check refuses flags that none of targets can use, naming the scheme
// they need.
func (f *layerFlags) check(targets []endpoint.Target) error {
	if (f.cert == "") != (f.key == "") {
		return usageErrorf("--cert and --key go together: give both files, or neither")
	}
	if f.warnDays < 0 {
		return usageErrorf("--warn-days must be 0 or more, got %d", f.warnDays)
	}
	var anyTLS, anyHTTP bool
	for _, t := range targets {
		anyTLS = anyTLS || t.TLS()
		anyHTTP = anyHTTP || t.Protocol() == "http"
	}
	var unused []string
	if !anyTLS {
		for name, set := range map[string]bool{"--ca": f.ca != "", "--cert": f.cert != "", "--sni": f.sni != "",
			"--insecure": f.insecure, "--warn-days": f.warnDays > 0} {
			if set {
				unused = append(unused, name)
			}
		}
		if len(unused) > 0 {
			return usageErrorf("%s: no target speaks TLS; name the layer in a URL (tls://, https://, grpcs://)",
				strings.Join(sorted(unused), ", "))
		}
	}
	if !anyHTTP {
		for name, set := range map[string]bool{"--expect-status": f.expectStatus != "", "--expect-body": f.expectBody != "",
			"--follow-redirects": f.follow} {
			if set {
				unused = append(unused, name)
			}
		}
		if len(unused) > 0 {
			return usageErrorf("%s: no target is HTTP; give an http:// or https:// URL", strings.Join(sorted(unused), ", "))
		}
	}
	return nil
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// describeTLS is one line on what a TLS layer learned, for people.
func describeTLS(t *probe.TLSResult) string {
	if t == nil || t.Version == "" {
		return ""
	}
	s := fmt.Sprintf("%s, certificate for %s until %s", t.Version, t.ServerName, t.NotAfter.UTC().Format("2006-01-02"))
	if t.Skipped {
		s += " (verification SKIPPED: --insecure)"
	}
	return s
}
