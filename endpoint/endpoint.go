// Package endpoint parses what users type to name things to reach: endpoints
// (host:port, [v6]:port, host with a default port), targets (an endpoint,
// or a URL naming the layer to check above TCP: tls://, https://, grpc://,
// postgres:// ...; ParseTarget), port lists
// (22,80,8000-8100), and scan targets (names, addresses, CIDR blocks and
// dashed ranges, alone or as lists). ValidName is the rule for the names of
// monitored endpoints and fleet hosts. Every error names the input and the
// rule it broke.
package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Sentinel errors; a *ParseError wraps exactly one of them.
var (
	ErrSyntax      = errors.New("endpoint: invalid syntax")
	ErrPortRange   = errors.New("endpoint: port out of range")
	ErrMissingPort = errors.New("endpoint: missing port")
	ErrBadHost     = errors.New("endpoint: invalid host")
)

// ParseError says which input was rejected and why.
type ParseError struct {
	Input  string
	Reason string // e.g. "port out of range 1-65535"
	Err    error  // one of the sentinels above
}

func (e *ParseError) Error() string { return fmt.Sprintf("%q: %s", e.Input, e.Reason) }
func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(input string, sentinel error, format string, args ...any) error {
	return &ParseError{Input: input, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}

// Endpoint is a TCP destination: a host (name or IP literal, without
// brackets) and a port.
type Endpoint struct {
	Host string
	Port uint16
}

// String renders the endpoint as host:port, bracketing IPv6 literals.
func (e Endpoint) String() string { return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))) }

// Addr returns the host as an IP address when it is a literal.
func (e Endpoint) Addr() (netip.Addr, bool) {
	a, err := netip.ParseAddr(e.Host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// AddrPort returns the endpoint as an address and port when the host is an IP literal.
func (e Endpoint) AddrPort() (netip.AddrPort, bool) {
	a, ok := e.Addr()
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, e.Port), true
}

// FromAddrPort makes an Endpoint from an address and port.
func FromAddrPort(ap netip.AddrPort) Endpoint {
	return Endpoint{Host: ap.Addr().Unmap().String(), Port: ap.Port()}
}

// ParseEndpoint parses "host:port", "[v6]:port", "v6-literal", or "host".
// When the port is absent, defaultPort is used; if that is zero the input is
// rejected with ErrMissingPort. A port may be a number or a service name
// from /etc/services ("db:postgresql").
func ParseEndpoint(s string, defaultPort uint16) (Endpoint, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Endpoint{}, parseErr(in, ErrSyntax, "empty target; want host:port")
	}
	if i := strings.Index(s, "://"); i >= 0 {
		return Endpoint{}, parseErr(in, ErrSyntax, "looks like a URL; give host:port (e.g. %s)",
			urlHint(s[i+3:]))
	}
	host, portStr, err := splitHostPort(s)
	if err != nil {
		return Endpoint{}, parseErr(in, ErrSyntax, "%v", err)
	}
	if err := checkHost(host); err != nil {
		return Endpoint{}, parseErr(in, ErrBadHost, "%v", err)
	}
	if portStr == "" {
		if defaultPort == 0 {
			return Endpoint{}, parseErr(in, ErrMissingPort, "missing port; want host:port (e.g. %s)%s",
				net.JoinHostPort(host, "443"), bareV6PortHint(s))
		}
		return Endpoint{Host: host, Port: defaultPort}, nil
	}
	port, err := parsePort(portStr)
	if err != nil {
		return Endpoint{}, parseErrFromPort(in, err)
	}
	return Endpoint{Host: host, Port: port}, nil
}

// ParseEndpoints parses each argument with ParseEndpoint.
func ParseEndpoints(args []string, defaultPort uint16) ([]Endpoint, error) {
	out := make([]Endpoint, 0, len(args))
	for _, a := range args {
		e, err := ParseEndpoint(a, defaultPort)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// bareV6PortHint says how to write "::1:22" when 22 was meant as the port:
// an unbracketed IPv6 literal whose last group is decimal and whose rest is
// itself an address. Empty otherwise.
func bareV6PortHint(s string) string {
	i := strings.LastIndexByte(s, ':')
	if strings.HasPrefix(s, "[") || i < 0 {
		return ""
	}
	addr, last := s[:i], s[i+1:]
	if _, err := strconv.ParseUint(last, 10, 16); err != nil || last == "0" {
		return ""
	}
	if a, err := netip.ParseAddr(addr); err != nil || !a.Is6() {
		return ""
	}
	return fmt.Sprintf("; if %s is the port, write %s", last, net.JoinHostPort(addr, last))
}

func urlHint(rest string) string {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		return "host:443"
	}
	if _, port, err := splitHostPort(rest); err == nil && port != "" {
		return rest
	}
	return net.JoinHostPort(strings.Trim(rest, "[]"), "443")
}

// splitHostPort accepts host, host:port, [v6], [v6]:port and bare v6 literals.
// port is empty when s has none; a port given empty is an error.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("missing ']' after IPv6 address")
		}
		host, rest := s[1:end], s[end+1:]
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", "", fmt.Errorf("%q inside brackets is not an IPv6 address", host)
		}
		switch {
		case rest == "":
			return host, "", nil
		case rest[0] != ':':
			return "", "", fmt.Errorf("unexpected %q after ']'; want [v6]:port", rest)
		}
		if rest[1:] == "" {
			return "", "", errors.New("empty port after ':'")
		}
		return host, rest[1:], nil
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", nil
	case 1:
		i := strings.IndexByte(s, ':')
		if s[i+1:] == "" {
			return "", "", errors.New("empty port after ':'")
		}
		return s[:i], s[i+1:], nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return s, "", nil // bare IPv6 literal
	}
	return "", "", errors.New("too many colons; write IPv6 addresses with a port as [v6]:port")
}

// checkHost accepts IP literals and DNS names (RFC 1123 labels, plus '_' which
// real service names use).
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if z := a.Zone(); z != "" && !validZone(z) {
			return fmt.Errorf("invalid IPv6 zone %q; want an interface name such as eth0", z)
		}
		return nil
	}
	name := strings.TrimSuffix(h, ".")
	if len(name) == 0 || len(name) > 253 {
		return fmt.Errorf("host name length %d outside 1-253", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("empty label in host name %q", h)
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q longer than 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", label)
		}
		for _, c := range []byte(label) {
			if !alnum(c) && c != '-' && c != '_' {
				return fmt.Errorf("character %q not allowed in host name", c)
			}
		}
	}
	if allDigitsAndDots(name) {
		return fmt.Errorf("%q is neither an IP address nor a host name", h)
	}
	return nil
}

func allDigitsAndDots(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// validZone accepts interface names and indexes (fe80::1%eth0, fe80::1%2).
func validZone(z string) bool {
	for _, c := range []byte(z) {
		if !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return len(z) <= 15
}
