package app

import (
	"strings"
	"testing"
)

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Kind
	}{
		{"tls alert handshake_failure", []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}, KindTLS},
		{"tls server hello", []byte{0x16, 0x03, 0x03, 0x00, 0x7a, 0x02}, KindTLS},
		{"tls header only", []byte{0x16, 0x03, 0x01}, KindTLS},
		{"go http 400 to a client hello", []byte("HTTP/1.1 400 Bad Request\r\n"), KindHTTP},
		{"http/1.0", []byte("HTTP/1.0 400 Bad Request\r\n\r\nClient sent"), KindHTTP},
		{"h2 settings", []byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5}, KindHTTP2},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), KindSSH},
		{"smtp", []byte("220 mail ESMTP\r\n"), KindSMTP},
		{"mysql greeting", []byte{0x4a, 0, 0, 0, 10, '8', '.', '0'}, KindMySQL},
		{"mysql error", []byte{0x17, 0, 0, 0, 0xff, 0x69, 0x04}, KindMySQL},
		{"redis pong", []byte("+PONG\r\n"), KindRedis},
		{"redis error", []byte("-NOAUTH Authentication required.\r\n"), KindRedis},
		{"postgres ssl refused", []byte("N"), KindPostgres},
		{"postgres error", []byte{'E', 0, 0, 0, 0x54, 'S'}, KindPostgres},
		{"empty", nil, KindUnknown},
		{"text", []byte("hello\n"), KindUnknown},
		{"tls with a version of no TLS", []byte{0x16, 0x02, 0x00}, KindUnknown},
		{"http lowercase", []byte("http/1.1 200"), KindUnknown},
	} {
		if got := Sniff(tc.in); got != tc.want {
			t.Errorf("%s: Sniff(% x) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote([]byte("HTTP/1.1 400 Bad Request")); got != `"HTTP/1.1 400 Bad"` {
		t.Errorf("Quote(text) = %s", got)
	}
	if got := Quote([]byte{0x15, 0x03, 0x03}); got != "15 03 03" {
		t.Errorf("Quote(binary) = %s", got)
	}
}

// FuzzSniff: any bytes get an answer, never a panic; the strongest
// signatures (TLS, HTTP) depend on the first bytes only, so more bytes
// after them do not change the answer.
func FuzzSniff(f *testing.F) {
	for _, s := range [][]byte{{0x16, 3, 3, 0, 5}, []byte("HTTP/1.1 200 OK\r\n"), []byte("+PONG\r\n"),
		{0x4a, 0, 0, 0, 10}, {0, 0, 6, 4, 0, 0, 0, 0, 0}, []byte("SSH-2.0-x"), []byte("N")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k := Sniff(b)
		if k.Describe() == "" {
			t.Fatalf("Sniff(% x) = %q has no description", b, k)
		}
		if k == KindTLS || k == KindHTTP {
			if got := Sniff(append(append([]byte{}, b...), "trailing"...)); got != k {
				t.Fatalf("Sniff(% x) = %q but with more bytes %q", b, k, got)
			}
		}
		if strings.HasPrefix(string(b), "HTTP/") && k != KindHTTP {
			t.Fatalf("Sniff(%q) = %q, want http", b, k)
		}
		q := Quote(b)
		if len(b) > 0 && q == "" {
			t.Fatalf("Quote(% x) is empty", b)
		}
	})
}
