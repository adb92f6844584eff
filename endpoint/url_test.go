package endpoint

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Target
		str  string // String(); empty: in
	}{
		{in: "db:5432", want: Target{Scheme: "tcp", Endpoint: Endpoint{"db", 5432}}},
		{in: "[::1]:22", want: Target{Scheme: "tcp", Endpoint: Endpoint{"::1", 22}}},
		{in: "tcp://db:5432", want: Target{Scheme: "tcp", Endpoint: Endpoint{"db", 5432}}, str: "db:5432"},
		{in: "tls://web", want: Target{Scheme: "tls", Endpoint: Endpoint{"web", 443}}},
		{in: "TLS://web:8443", want: Target{Scheme: "tls", Endpoint: Endpoint{"web", 8443}}, str: "tls://web:8443"},
		{in: "http://web", want: Target{Scheme: "http", Endpoint: Endpoint{"web", 80}, Path: "/"}, str: "http://web/"},
		{in: "http://web:8080/healthz?full=1&x=%20", want: Target{Scheme: "http", Endpoint: Endpoint{"web", 8080}, Path: "/healthz?full=1&x=%20"}},
		{in: "https://[::1]/a%2Fb", want: Target{Scheme: "https", Endpoint: Endpoint{"::1", 443}, Path: "/a%2Fb"}},
		{in: "https://127.0.0.1:8443/", want: Target{Scheme: "https", Endpoint: Endpoint{"127.0.0.1", 8443}, Path: "/"}},
		{in: "grpc://h", want: Target{Scheme: "grpc", Endpoint: Endpoint{"h", 50051}}},
		{in: "grpc://h:50051/my.Service", want: Target{Scheme: "grpc", Endpoint: Endpoint{"h", 50051}, Service: "my.Service"}, str: "grpc://h/my.Service"},
		{in: "grpcs://h:9000?service=a.B", want: Target{Scheme: "grpcs", Endpoint: Endpoint{"h", 9000}, Service: "a.B"}, str: "grpcs://h:9000/a.B"},
		{in: "postgres://app:secret@db/orders?sslmode=require", want: Target{Scheme: "postgres", Endpoint: Endpoint{"db", 5432}, User: "app", Database: "orders", Params: url.Values{"sslmode": {"require"}}}, str: "postgres://app@db/orders?sslmode=require"},
		{in: "postgresql://db:6432", want: Target{Scheme: "postgres", Endpoint: Endpoint{"db", 6432}}, str: "postgres://db:6432"},
		{in: "mysql://root@db", want: Target{Scheme: "mysql", Endpoint: Endpoint{"db", 3306}, User: "root"}},
		{in: "mariadb://db", want: Target{Scheme: "mysql", Endpoint: Endpoint{"db", 3306}}, str: "mysql://db"},
		{in: "redis://:pw@cache/2", want: Target{Scheme: "redis", Endpoint: Endpoint{"cache", 6379}, Database: "2"}, str: "redis://cache/2"},
		{in: "rediss://cache:6380", want: Target{Scheme: "rediss", Endpoint: Endpoint{"cache", 6380}}},
	} {
		got, err := ParseTarget(tt.in)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if got.String() != str {
			t.Errorf("ParseTarget(%q).String() = %q, want %q", tt.in, got.String(), str)
		}
	}
}

func TestTargetLayers(t *testing.T) {
	for in, want := range map[string]string{"db:1": "tcp/false/", "tls://h": "tls/true/",
		"https://h": "http/true/http", "grpc://h": "grpc/false/grpc", "grpcs://h": "grpc/true/grpc",
		"postgres://h": "postgres/false/postgres", "rediss://h": "redis/true/redis"} {
		tg, err := ParseTarget(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.Layer() + "/" + map[bool]string{true: "true", false: "false"}[tg.TLS()] + "/" + tg.Protocol(); got != want {
			t.Errorf("%s: layer/tls/protocol = %s, want %s", in, got, want)
		}
	}
}

func TestParseTargetErrors(t *testing.T) {
	for _, tt := range []struct {
		in  string
		err error
		msg string
	}{
		{"db", ErrMissingPort, `"db": missing port; want host:port (e.g. db:443); or a URL such as https://db`},
		{"tcp://db", ErrMissingPort, `"tcp://db": missing port; tcp:// has no default (e.g. tcp://db:443)`},
		{"ftp://db", ErrScheme, `"ftp://db": unknown scheme "ftp"; reach takes grpc://, grpcs://, http://, https://, mysql://, postgres://, redis://, rediss://, tcp://, tls://, or host:port`},
		{"http://", ErrBadHost, `"http://": empty host`},
		{"http://db:99999", ErrPortRange, ""},
		{"http://db:0", ErrPortRange, ""},
		{"https://a..b/", ErrBadHost, ""},
		{"http://user:pw@web/", ErrSyntax, `"http://user:pw@web/": user information (user@) in a http:// URL is not sent; remove it`},
		{"http://web/#top", ErrSyntax, ""},
		{"tls://web/path", ErrSyntax, `"tls://web/path": tls:// takes host:port only; for a path, use http:// or https://`},
		{"tcp://web:1?x", ErrSyntax, ""},
		{"grpc://h/a/b", ErrSyntax, ""},
		{"grpc://h/a?service=b", ErrSyntax, ""},
		{"grpc://h?health=1", ErrSyntax, ""},
		{"postgres://h/a/b", ErrSyntax, ""},
		{"http://[::1", ErrSyntax, ""},
		{"http://::1:80/", ErrSyntax, ""},
		{"http://web:x y/", ErrSyntax, ""},
	} {
		_, err := ParseTarget(tt.in)
		var pe *ParseError
		if !errors.Is(err, tt.err) || !errors.As(err, &pe) || pe.Input != tt.in {
			t.Errorf("ParseTarget(%q) = %v, want a *ParseError wrapping %v", tt.in, err, tt.err)
			continue
		}
		if tt.msg != "" && err.Error() != tt.msg {
			t.Errorf("ParseTarget(%q):\n got %s\nwant %s", tt.in, err, tt.msg)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"db:5432", "[::1]:22", "tcp://h:1", "tls://h", "http://h:8080/x?y=1",
		"https://[fe80::1%25eth0]/", "grpc://h/a.B", "grpcs://h?service=x", "postgres://u:p@h/db?sslmode=disable",
		"mysql://h", "redis://h/0", "rediss://h", "ftp://h", "http://u@h", "HTTP://H"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != s {
				t.Fatalf("error %v does not carry the input", err)
			}
			return
		}
		if tg.Endpoint.Port == 0 || tg.Endpoint.Host == "" {
			t.Fatalf("%q: accepted %+v", s, tg)
		}
		if !strings.Contains(s, "://") {
			// Plain targets parse exactly as ParseEndpoint parses them.
			ep, err := ParseEndpoint(s, 0)
			if err != nil || ep != tg.Endpoint || tg.Scheme != "tcp" {
				t.Fatalf("%q: ParseTarget %+v, ParseEndpoint %v, %v", s, tg, ep, err)
			}
		}
		back, err := ParseTarget(tg.String())
		if err != nil || !reflect.DeepEqual(back, tg) {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, tg, tg.String(), back, err)
		}
		if strings.Contains(tg.String(), ":"+"secret@") {
			t.Fatalf("%q: a password survived in %q", s, tg.String())
		}
	})
}
