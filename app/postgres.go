package app

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

func init() { register("postgres", Postgres) }

// pgMaxMessage bounds one message from the server. The answers a startup
// gets (an error, an authentication request, parameters) are far smaller;
// a longer length is not PostgreSQL.
const pgMaxMessage = 64 << 10

// pgMaxMessages bounds the messages read after a successful login, up to
// ReadyForQuery: a server sends about fifteen parameters.
const pgMaxMessages = 64

// Postgres learns what pg_isready learns, without credentials: it sends a
// StartupMessage (protocol 3.0) for req.User, or NoSuchUser, and
// req.Database, and reads the answer.
//
//   - An authentication request, or an error of class 28 (invalid
//     authorization: no such role, no pg_hba.conf entry) or 3D000 (no such
//     database): the server accepts connections. Ready, State "accepting".
//   - 57P03 (cannot connect now): the server is starting up, shutting
//     down, in recovery, or a standby that takes no connections:
//     NotReady, State says which, from the server's message.
//   - 53300: too many clients (TooManyConnections).
//   - Any other error: AppError, quoted.
//
// When the server lets the user in (trust authentication), Version is its
// server_version parameter; otherwise the server does not tell it before
// a login. The session ends with a Terminate, as libpq ends one, whatever
// the answer, so the server logs no "unexpected EOF".
func Postgres(ctx context.Context, conn net.Conn, req Request) (Result, error) {
	user := req.User
	if user == "" {
		user = NoSuchUser
	}
	db := req.Database
	if db == "" {
		db = user // libpq's default
	}
	start := time.Now()
	if _, err := conn.Write(pgStartup(user, db)); err != nil {
		return Result{}, fmt.Errorf("send the startup message: %w", err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	if _, err := br.Peek(1); err != nil {
		return Result{}, fmt.Errorf("read the answer to the startup message: %w", err)
	}
	firstByte := time.Since(start)
	r, err := pgRead(br)
	r.FirstByte = firstByte
	// Best effort: after an error the server has ended the session and may
	// have closed already.
	conn.Write([]byte{'X', 0, 0, 0, 4})
	return r, err
}

// pgStartup is a StartupMessage for protocol 3.0.
func pgStartup(user, db string) []byte {
	b := make([]byte, 8, 80)
	binary.BigEndian.PutUint32(b[4:], 3<<16)
	for _, kv := range [][2]string{{"user", user}, {"database", db}, {"application_name", "reach"}} {
		b = append(b, kv[0]...)
		b = append(b, 0)
		b = append(b, kv[1]...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// pgRead reads the server's answer to a StartupMessage and judges it. Its
// error is an I/O failure; bytes of another protocol are WrongProtocol.
func pgRead(br *bufio.Reader) (Result, error) {
	var version string
	for range pgMaxMessages {
		typ, body, err := pgMessage(br)
		var bad *badBytesError
		if errors.As(err, &bad) {
			return otherProtocol("PostgreSQL", bad.b), nil
		}
		if err != nil {
			return Result{}, err
		}
		switch typ {
		case 'E':
			return pgJudge(pgFields(body)), nil
		case 'R':
			if len(body) < 4 {
				return otherProtocol("PostgreSQL", append([]byte{typ}, body...)), nil
			}
			if code := binary.BigEndian.Uint32(body); code != 0 {
				return Result{Ready: true, State: "accepting", Detail: "the server asked for " +
					pgAuthName(code) + ": it accepts connections (no password was sent)"}, nil
			}
			// AuthenticationOk: the user got in; parameters follow.
		case 'S':
			if k, v, ok := pgParameter(body); ok && k == "server_version" {
				version = v
			}
		case 'Z':
			return Result{Ready: true, State: "accepting", Version: version,
				Detail: "logged in (the server trusts this user); no query was sent"}, nil
		case 'N', 'K', 'v':
			// A notice, the cancel key, the protocol minor version the
			// server speaks: nothing to judge.
		default:
			return otherProtocol("PostgreSQL", append([]byte{typ}, body...)), nil
		}
	}
	return Result{Cause: AppError, Detail: fmt.Sprintf(
		"the server sent more than %d messages after the login without being ready for a query", pgMaxMessages)}, nil
}

// badBytesError is bytes that do not parse as the protocol expected.
type badBytesError struct{ b []byte }

func (e *badBytesError) Error() string { return "unexpected bytes " + Quote(e.b) }

// pgMessage reads one message: a type byte, a big-endian length that
// counts itself, the body. A server that fails before it speaks the
// protocol (a postmaster that could not fork) sends 'E' and a bare
// C string, the old protocol's error: that is returned as an 'E' with an
// 'M' field, so it is judged as errors are.
func pgMessage(br *bufio.Reader) (byte, []byte, error) {
	head, err := br.Peek(5)
	if len(head) == 0 {
		return 0, nil, err
	}
	if err != nil && len(head) < 5 {
		if errors.Is(err, io.EOF) {
			return 0, nil, &badBytesError{b: head}
		}
		return 0, nil, err
	}
	typ, n := head[0], binary.BigEndian.Uint32(head[1:])
	if typ == 'E' && printable(head[1:5]) {
		// The old protocol's error: its text ends at a NUL (or the EOF).
		text, err := br.ReadSlice(0)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return 0, nil, err
		}
		text = text[1:]
		if len(text) > 0 && text[len(text)-1] == 0 {
			text = text[:len(text)-1]
		}
		return 'E', append(append([]byte{'M'}, text...), 0, 0), nil
	}
	if n < 4 || n > pgMaxMessage {
		return 0, nil, &badBytesError{b: head}
	}
	msg := make([]byte, 1+int(n))
	if _, err := io.ReadFull(br, msg); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("the server closed the connection in the middle of a message: %w", err)
		}
		return 0, nil, err
	}
	return typ, msg[5:], nil
}

// pgFields splits an ErrorResponse's body into its fields: a code byte
// (S severity, C SQLSTATE, M message, D detail, H hint...) and a C string
// each, ended by a NUL.
func pgFields(body []byte) map[byte]string {
	f := map[byte]string{}
	for len(body) > 0 && body[0] != 0 {
		code := body[0]
		body = body[1:]
		end := 0
		for end < len(body) && body[end] != 0 {
			end++
		}
		f[code] = string(body[:end])
		if end == len(body) {
			break
		}
		body = body[end+1:]
	}
	return f
}

// pgParameter reads a ParameterStatus: a name and a value, C strings.
func pgParameter(body []byte) (name, value string, ok bool) {
	k, rest, ok := strings.Cut(string(body), "\x00")
	if !ok {
		return "", "", false
	}
	v, _, ok := strings.Cut(rest, "\x00")
	return k, v, ok
}

// pgAuthName names what an authentication request asks for.
func pgAuthName(code uint32) string {
	switch code {
	case 2:
		return "Kerberos"
	case 3:
		return "a clear-text password"
	case 5:
		return "an MD5 password"
	case 7:
		return "GSSAPI"
	case 9:
		return "SSPI"
	case 10:
		return "SASL (SCRAM)"
	}
	return fmt.Sprintf("authentication method %d", code)
}

// pgJudge turns an ErrorResponse's fields into a Result.
func pgJudge(f map[byte]string) Result {
	code, msg := f['C'], f['M']
	quoted := pgQuote(f)
	switch {
	case code == "57P03":
		return Result{Cause: NotReady, State: pgStartState(msg),
			Detail: "the server does not take connections yet: " + quoted}
	case code == "53300":
		return Result{Cause: TooManyConnections, State: "too many clients",
			Detail: "the server is at its connection limit (max_connections): " + quoted}
	case strings.HasPrefix(code, "28"), code == "3D000":
		return Result{Ready: true, State: "accepting",
			Detail: "the server checked the login and refused it, so it accepts connections: " + quoted}
	}
	return Result{Cause: AppError, State: "error", Detail: "the server answered the startup with an error: " + quoted}
}

// pgStartState names what a 57P03's message says the server is doing.
func pgStartState(msg string) string {
	switch {
	case strings.Contains(msg, "starting up"):
		return "starting up"
	case strings.Contains(msg, "shutting down"):
		return "shutting down"
	case strings.Contains(msg, "recovery"):
		return "in recovery"
	case strings.Contains(msg, "not yet accepting"):
		return "not yet accepting connections"
	}
	return "not accepting connections"
}

// pgQuote quotes an error as psql prints it: severity, SQLSTATE, message,
// and the detail and hint when there are.
func pgQuote(f map[byte]string) string {
	sev := f['V']
	if sev == "" {
		sev = f['S']
	}
	var b strings.Builder
	if sev != "" {
		b.WriteString(sev + ": ")
	}
	b.WriteString(fmt.Sprintf("%q", f['M']))
	if f['C'] != "" {
		b.WriteString(" (SQLSTATE " + f['C'] + ")")
	}
	if d := f['D']; d != "" {
		b.WriteString("; " + d)
	}
	if h := f['H']; h != "" {
		b.WriteString("; hint: " + h)
	}
	return b.String()
}

// printable reports whether b is all printable ASCII.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
