package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/endpoint"
)

// Hub failover: how long one hub may take to accept before the next is
// tried, and how long a hub that refused or timed out is skipped.
const (
	hubDialTimeout = 3 * time.Second
	hubEjectFor    = 10 * time.Second
	hubEjectMax    = time.Minute
)

// hubClient returns the client that calls the hubs: with one URL, a plain
// client; with several (replicas of one hub on a shared store), a client
// whose connections come from a dial.Dialer over every hub in the order
// given (priority failover; a hub that refused or did not answer is
// ejected for a while, then tried again first). Every hub serves the same
// protocol and store, so a call goes to whichever accepts; a batch that
// failed stays in the buffer and goes, with its sequence numbers, to the
// next hub, which stores what the failed one had not.
func hubClient(urls []string, token string, hc *http.Client) (*client, error) {
	if len(urls) == 1 {
		return newClient(urls[0], token, hc)
	}
	var eps []endpoint.Endpoint
	scheme := ""
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("agent: hub %q is not an http:// or https:// URL", u)
		}
		if scheme != "" && p.Scheme != scheme {
			return nil, fmt.Errorf("agent: hubs %s and %s differ in scheme; give every hub "+
				"replica the same (all https, or all http)", urls[0], u)
		}
		scheme = p.Scheme
		port := uint16(80)
		if scheme == "https" {
			port = 443
		}
		ep, err := endpoint.ParseEndpoint(p.Host, port)
		if err != nil {
			return nil, fmt.Errorf("agent: hub %q: %w", u, err)
		}
		eps = append(eps, ep)
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultCallTimeout}
	}
	var base *http.Transport
	if t, ok := hc.Transport.(*http.Transport); ok {
		base = t.Clone()
	} else {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	f := &failover{names: map[netip.AddrPort]string{}}
	f.d = dial.New(eps, dial.Options{Policy: dial.Ordered, Timeout: hubDialTimeout,
		Eject: dial.Ejection{Consecutive: 1, BaseTime: hubEjectFor, MaxTime: hubEjectMax},
		OnAttempt: func(a dial.Attempt) {
			if a.Err == nil && a.Addr.IsValid() {
				f.mu.Lock()
				f.names[a.Addr] = a.Endpoint.Host
				f.mu.Unlock()
			}
		}})
	base.Proxy = nil // the dialer picks the hub; a proxy would hide which
	base.DialContext = f.d.DialNetwork
	if scheme == "https" {
		tc := base.TLSClientConfig
		if tc == nil {
			tc = &tls.Config{}
		}
		base.DialTLSContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return f.dialTLS(ctx, network, tc)
		}
	}
	out := *hc
	out.Transport = base
	return newClient(urls[0], token, &out)
}

// failover dials whichever hub accepts, and remembers the name each
// address was dialled as, so TLS verifies the certificate of the hub
// actually reached.
type failover struct {
	d     *dial.Dialer
	mu    sync.Mutex
	names map[netip.AddrPort]string
}

func (f *failover) dialTLS(ctx context.Context, network string, tc *tls.Config) (net.Conn, error) {
	conn, err := f.d.DialNetwork(ctx, network, "")
	if err != nil {
		return nil, err
	}
	ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	f.mu.Lock()
	name := f.names[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
	if name == "" {
		name = f.names[ap]
	}
	f.mu.Unlock()
	c := tc.Clone()
	if c.ServerName == "" {
		c.ServerName = name
	}
	c.NextProtos = []string{"http/1.1"}
	tconn := tls.Client(conn, c)
	if err := tconn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("agent: TLS with hub %s: %w", name, err)
	}
	return tconn, nil
}

// SplitHubs reads hub URLs as users give them: repeated, comma-separated or
// both; empty items are dropped.
func SplitHubs(list []string) []string {
	var out []string
	for _, s := range list {
		for _, u := range strings.Split(s, ",") {
			if u = strings.TrimSpace(u); u != "" {
				out = append(out, u)
			}
		}
	}
	return out
}
