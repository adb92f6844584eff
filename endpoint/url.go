package endpoint

import (
	"errors"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ErrScheme is wrapped by a *ParseError for a URL whose scheme reach does
// not know.
var ErrScheme = errors.New("endpoint: unknown scheme")

// A Target is an endpoint and what to ask it: plain TCP (host:port or
// tcp://), a TLS handshake (tls://), or an application protocol above them
// (http://, https://, grpc://, grpcs://, postgres://, mysql://, redis://,
// rediss://). ParseTarget makes one.
type Target struct {
	// Scheme is the URL's scheme, lower case, "postgresql" written
	// "postgres"; "tcp" for a plain host:port.
	Scheme   string
	Endpoint Endpoint
	// Path is what HTTP asks for, escaped, with its query ("/healthz?x=1");
	// "/" when the URL has none. Empty for other schemes.
	Path string
	// Service is the gRPC health service (grpc://h:50051/my.Service or
	// ?service=my.Service); empty asks for the server as a whole.
	Service string
	// Database is a database URL's path (postgres://h/app, redis://h/2).
	Database string
	// User is a database URL's user. A password in the URL is dropped:
	// readiness never logs in, and no password is kept in memory.
	User string
	// Params is a database URL's query (sslmode=require ...), nil when none.
	Params url.Values
}

// scheme is what a URL scheme means.
type scheme struct {
	port     uint16 // default port; 0: the URL must name one
	tls      bool   // TLS from the connection's first byte
	protocol string // the application protocol (package app); "" for none
}

var schemes = map[string]scheme{
	"tcp":      {0, false, ""},
	"tls":      {443, true, ""},
	"http":     {80, false, "http"},
	"https":    {443, true, "http"},
	"grpc":     {50051, false, "grpc"},
	"grpcs":    {443, true, "grpc"},
	"postgres": {5432, false, "postgres"},
	"mysql":    {3306, false, "mysql"},
	"redis":    {6379, false, "redis"},
	"rediss":   {6379, true, "redis"},
}

// aliases are other spellings of a scheme.
var aliases = map[string]string{"postgresql": "postgres", "mariadb": "mysql"}

// Schemes lists the URL schemes ParseTarget takes, sorted.
func Schemes() []string {
	var out []string
	for s := range schemes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// DefaultPort is the port a URL of scheme means when it names none; 0 for
// tcp:// and schemes reach does not know.
func DefaultPort(scheme string) uint16 { return schemes[scheme].port }

// TLS reports whether the connection speaks TLS from its first byte
// (tls://, https://, grpcs://, rediss://). PostgreSQL's and MySQL's TLS,
// negotiated inside their protocols, is theirs.
func (t Target) TLS() bool { return schemes[t.Scheme].tls }

// Protocol is the application protocol above TCP and TLS (package app's
// names: "http", "grpc", "postgres", "mysql", "redis"), or "" for tcp://
// and tls://.
func (t Target) Protocol() string { return schemes[t.Scheme].protocol }

// Layer names the last layer the target asks for: the protocol, else
// "tls" or "tcp".
func (t Target) Layer() string {
	switch {
	case t.Protocol() != "":
		return t.Protocol()
	case t.TLS():
		return "tls"
	}
	return "tcp"
}

// String renders the target as ParseTarget reads it: host:port for plain
// TCP, a URL otherwise, without the scheme's default port (and without a
// password, which was never kept).
func (t Target) String() string {
	if t.Scheme == "tcp" || t.Scheme == "" {
		return t.Endpoint.String()
	}
	u := url.URL{Scheme: t.Scheme, Host: t.Endpoint.String()}
	if t.Endpoint.Port == DefaultPort(t.Scheme) {
		u.Host = strings.TrimSuffix(u.Host, ":"+strconv.Itoa(int(t.Endpoint.Port)))
	}
	if t.User != "" {
		u.User = url.User(t.User)
	}
	switch t.Protocol() {
	case "http":
		return u.String() + t.Path
	case "grpc":
		if t.Service != "" {
			u.Path = "/" + t.Service
		}
	case "postgres", "mysql", "redis":
		if t.Database != "" {
			u.Path = "/" + t.Database
		}
		u.RawQuery = t.Params.Encode()
	}
	return u.String()
}

// ParseTarget parses a target as users type it: host:port (as
// ParseEndpoint, with no default port) or a URL of one of Schemes, whose
// port defaults to the scheme's (DefaultPort). http(s) keep their path and
// query; grpc(s) take a health service name as the path or ?service=;
// database URLs keep their user, database and query, never a password.
// Errors are *ParseError, with a hint of what to write.
func ParseTarget(s string) (Target, error) {
	in := s
	s = strings.TrimSpace(s)
	i := strings.Index(s, "://")
	if i < 0 {
		ep, err := ParseEndpoint(s, 0)
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				pe.Input = in
				if pe.Err == ErrMissingPort {
					pe.Reason += "; or a URL such as " + urlExample(s)
				}
			}
			return Target{}, err
		}
		return Target{Scheme: "tcp", Endpoint: ep}, nil
	}
	name := strings.ToLower(s[:i])
	if a, ok := aliases[name]; ok {
		name = a
	}
	sch, ok := schemes[name]
	if !ok {
		return Target{}, parseErr(in, ErrScheme, "unknown scheme %q; reach takes %s, or host:port",
			s[:i], strings.Join(Schemes(), "://, ")+"://")
	}
	u, err := url.Parse(name + s[i:])
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Target{}, parseErr(in, ErrSyntax, "not a URL: %v", err)
	}
	t := Target{Scheme: name}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return Target{}, parseErr(in, ErrSyntax, "a URL fragment (#...) is never sent to a server; remove it")
	}
	if u.User != nil {
		switch sch.protocol {
		case "postgres", "mysql", "redis":
			t.User = u.User.Username()
		default:
			return Target{}, parseErr(in, ErrSyntax, "user information (%s@) in a %s:// URL is not sent; remove it",
				u.User.Username(), name)
		}
	}
	host, port, err := splitHostPort(u.Host)
	if err != nil {
		return Target{}, parseErr(in, ErrSyntax, "%v", err)
	}
	if err := checkHost(host); err != nil {
		return Target{}, parseErr(in, ErrBadHost, "%v", err)
	}
	t.Endpoint.Host = host
	switch {
	case port != "":
		if t.Endpoint.Port, err = parsePort(port); err != nil {
			return Target{}, parseErrFromPort(in, err)
		}
	case sch.port == 0:
		return Target{}, parseErr(in, ErrMissingPort, "missing port; %s:// has no default (e.g. %s://%s)",
			name, name, net.JoinHostPort(host, "443"))
	default:
		t.Endpoint.Port = sch.port
	}
	if err := t.setPath(u); err != nil {
		return Target{}, parseErr(in, ErrSyntax, "%v", err)
	}
	return t, nil
}

// setPath keeps what the URL's path and query mean for t's scheme.
func (t *Target) setPath(u *url.URL) error {
	path := u.EscapedPath()
	switch t.Protocol() {
	case "http":
		t.Path = path
		if t.Path == "" {
			t.Path = "/"
		}
		if u.RawQuery != "" || u.ForceQuery {
			t.Path += "?" + u.RawQuery
		}
		return nil
	case "grpc":
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return err
		}
		for k := range q {
			if k != "service" {
				return errors.New("unknown query parameter " + k + "; grpc:// takes ?service=NAME only")
			}
		}
		t.Service = strings.Trim(u.Path, "/")
		if strings.Contains(t.Service, "/") {
			return errors.New("the path names one health service (grpc://host:port/my.Service)")
		}
		if svc := q.Get("service"); svc != "" {
			if t.Service != "" && t.Service != svc {
				return errors.New("two service names, " + t.Service + " in the path and " + svc + " in ?service=: give one")
			}
			t.Service = svc
		}
		return nil
	case "postgres", "mysql", "redis":
		t.Database = strings.TrimPrefix(u.Path, "/")
		if strings.Contains(t.Database, "/") {
			return errors.New("the path names one database (" + t.Scheme + "://host:port/NAME)")
		}
		if u.RawQuery != "" {
			q, err := url.ParseQuery(u.RawQuery)
			if err != nil {
				return err
			}
			delete(q, "password")
			if len(q) > 0 {
				t.Params = q
			}
		}
		return nil
	}
	if (path != "" && path != "/") || u.RawQuery != "" {
		return errors.New(t.Scheme + ":// takes host:port only; for a path, use http:// or https://")
	}
	return nil
}

// ParseTargets parses each argument with ParseTarget.
func ParseTargets(args []string) ([]Target, error) {
	out := make([]Target, 0, len(args))
	for _, a := range args {
		t, err := ParseTarget(a)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// urlExample is a URL for a host given without a port.
func urlExample(s string) string {
	host, _, err := splitHostPort(s)
	if err != nil || host == "" {
		host = "host"
	}
	return "https://" + strings.TrimSuffix(net.JoinHostPort(host, "443"), ":443")
}
