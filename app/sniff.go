package app

import (
	"bytes"
	"fmt"
)

// Kind is what a peer's first bytes look like.
type Kind string

const (
	KindUnknown Kind = ""
	// KindTLS: a TLS record (handshake, alert, ...); a plain request sent
	// to a TLS port is often answered by an alert.
	KindTLS Kind = "tls"
	// KindHTTP: an HTTP/1 status line ("HTTP/1.1 400 Bad Request"); a TLS
	// ClientHello sent to a plain HTTP port is answered so.
	KindHTTP Kind = "http"
	// KindHTTP2: HTTP/2 frames without TLS (a SETTINGS frame: gRPC in plain text).
	KindHTTP2 Kind = "http2"
	KindSSH   Kind = "ssh"
	KindSMTP  Kind = "smtp-or-ftp" // a "220 " greeting
	// KindMySQL: a MySQL/MariaDB greeting (protocol version 10) or its error packet.
	KindMySQL Kind = "mysql"
	// KindRedis: a RESP reply ("+", "-ERR", "$", "*", ":").
	KindRedis Kind = "redis"
	// KindPostgres: a PostgreSQL answer to a startup ('E' error, 'R' auth)
	// or to an SSLRequest ('S'/'N' alone).
	KindPostgres Kind = "postgres"
)

// tlsRecordTypes are the TLS record content types: change_cipher_spec,
// alert, handshake, application_data.
var tlsRecordTypes = [256]bool{20: true, 21: true, 22: true, 23: true}

// Sniff says what a peer's first bytes look like, or KindUnknown. It is
// for naming what answered when the expected protocol did not: a guess from
// a handful of bytes, checked from the strongest signature to the weakest.
func Sniff(b []byte) Kind {
	switch {
	case len(b) >= 3 && tlsRecordTypes[b[0]] && b[1] == 3 && b[2] <= 4:
		// Record type, then version 3.x (SSL 3.0 to TLS 1.3's 3.3 on the wire).
		return KindTLS
	case bytes.HasPrefix(b, []byte("HTTP/")):
		return KindHTTP
	case len(b) >= 9 && b[3] == 4 && b[0] == 0 && (b[5]|b[6]|b[7]|b[8]) == 0:
		// A frame of type SETTINGS on stream 0: HTTP/2's server preface.
		return KindHTTP2
	case bytes.HasPrefix(b, []byte("SSH-")):
		return KindSSH
	case bytes.HasPrefix(b, []byte("220 ")) || bytes.HasPrefix(b, []byte("220-")):
		return KindSMTP
	case len(b) >= 5 && b[3] == 0 && (b[4] == 10 || b[4] == 0xff) && int(b[0])|int(b[1])<<8|int(b[2])<<16 > 0:
		// A packet of sequence 0 whose payload starts with protocol
		// version 10 (the greeting) or 0xff (an error instead of one).
		return KindMySQL
	case len(b) >= 3 && bytes.IndexByte([]byte("+-$*:"), b[0]) >= 0 && bytes.Contains(b, []byte("\r\n")):
		return KindRedis
	case len(b) == 1 && (b[0] == 'S' || b[0] == 'N'):
		return KindPostgres
	case len(b) >= 5 && (b[0] == 'E' || b[0] == 'R') && b[1] == 0 && b[2] == 0:
		// A message type, then a big-endian length far below 64 KiB.
		return KindPostgres
	}
	return KindUnknown
}

// Describe names a Kind for a user: "a TLS record" etc.
func (k Kind) Describe() string {
	switch k {
	case KindTLS:
		return "a TLS record (the port speaks TLS)"
	case KindHTTP:
		return "a plain HTTP answer (the port speaks HTTP without TLS)"
	case KindHTTP2:
		return "an HTTP/2 frame without TLS (plain-text HTTP/2 or gRPC)"
	case KindSSH:
		return "an SSH greeting"
	case KindSMTP:
		return "a 220 greeting (SMTP or FTP)"
	case KindMySQL:
		return "a MySQL/MariaDB greeting"
	case KindRedis:
		return "a Redis reply"
	case KindPostgres:
		return "a PostgreSQL message"
	}
	return "bytes of no protocol reach knows"
}

// Quote shows a peer's first bytes for evidence: up to 16, printable ones as
// text and the rest in hex.
func Quote(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	printable := true
	for _, c := range b {
		if c < 0x20 && c != '\r' && c != '\n' || c > 0x7e {
			printable = false
		}
	}
	if printable {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("% x", b)
}
