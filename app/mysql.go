package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

func init() { register("mysql", MySQL) }

// mysqlMaxPacket bounds one packet from the server: a greeting is about
// a hundred bytes, an error a few hundred.
const mysqlMaxPacket = 16 << 10

// mysqlMaxRounds bounds the authentication exchange (auth switch, more data)
// before the server's verdict.
const mysqlMaxRounds = 4

// Capability flags of the client's HandshakeResponse41.
const (
	mysqlLongPassword     = 1 << 0
	mysqlProtocol41       = 1 << 9
	mysqlSecureConnection = 1 << 15
	mysqlPluginAuth       = 1 << 19
)

// MySQL error codes the check tells apart.
const (
	mysqlTooManyConnections = 1040 // ER_CON_COUNT_ERROR
	mysqlAccessDenied       = 1045 // ER_ACCESS_DENIED_ERROR
	mysqlShutdown           = 1053 // ER_SERVER_SHUTDOWN
	mysqlHostBlocked        = 1129 // ER_HOST_IS_BLOCKED
	mysqlHostNotAllowed     = 1130 // ER_HOST_NOT_PRIVILEGED
	mysqlUserTooManyConns   = 1203 // ER_TOO_MANY_USER_CONNECTIONS
)

// MySQL reads a MySQL or MariaDB server's greeting (its version), or the
// error it sends instead: 1040 too many connections (TooManyConnections),
// 1129 this host is blocked (HostBlocked), 1053 shutting down (NotReady).
//
// Then it ends the handshake the way the protocol wants, because a
// connection closed in the middle of it is a "handshake error" that the
// server counts against the client's host, and max_connect_errors of them
// in a row (100 by default; MariaDB 10.x: 100, MySQL 5.6+: 100) block the
// host until FLUSH HOSTS: a monitor that only connects and closes gets
// itself blocked. The check answers the greeting with a HandshakeResponse
// for req.User, or NoSuchUser, with an empty password; the server's
// "access denied" (1045) is an authentication error, which it does not
// count toward blocking, and it says the server accepts connections:
// Ready, State "accepting". A user that gets in (one with no password, or
// an anonymous account) is logged out with COM_QUIT.
func MySQL(ctx context.Context, conn net.Conn, req Request) (Result, error) {
	br := bufio.NewReaderSize(conn, 1024)
	start := time.Now()
	seq, greeting, err := mysqlPacket(br)
	var bad *badBytesError
	if errors.As(err, &bad) {
		return otherProtocol("MySQL", bad.b), nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("read the greeting: %w", err)
	}
	firstByte := time.Since(start)
	g, err := mysqlParseGreeting(greeting)
	if err != nil {
		return otherProtocol("MySQL", greeting), nil
	}
	if g.err != nil {
		r := mysqlJudge(*g.err, "instead of a greeting")
		r.FirstByte = firstByte
		return r, nil
	}
	user := req.User
	if user == "" {
		user = NoSuchUser
	}
	r := Result{Version: g.version, FirstByte: firstByte}
	reply := mysqlHandshakeResponse(user, req.Database, g.plugin, nil)
	for round := 0; ; round++ {
		seq++
		if _, err := conn.Write(mysqlFrame(seq, reply)); err != nil {
			return r, fmt.Errorf("send the handshake response: %w", err)
		}
		var p []byte
		seq, p, err = mysqlPacket(br)
		if errors.As(err, &bad) {
			return otherProtocol("MySQL", bad.b), nil
		}
		if err != nil {
			return r, fmt.Errorf("read the answer to the handshake response: %w", err)
		}
		switch {
		case len(p) == 0:
			return otherProtocol("MySQL", p), nil
		case p[0] == 0x00: // OK: the user is in; log out as the protocol wants.
			conn.Write(mysqlFrame(0, []byte{0x01})) // COM_QUIT
			r.Ready, r.State = true, "accepting"
			r.Detail = fmt.Sprintf("logged in as %q without a password and logged out (COM_QUIT)", user)
			return r, nil
		case p[0] == 0xff:
			e, ok := mysqlParseError(p, true)
			if !ok {
				return otherProtocol("MySQL", p), nil
			}
			j := mysqlJudge(e, "to the login")
			j.Version, j.FirstByte = r.Version, r.FirstByte
			return j, nil
		case round+1 >= mysqlMaxRounds:
			return Result{Cause: AppError, Version: r.Version, FirstByte: r.FirstByte, Detail: fmt.Sprintf(
				"the server asked for more authentication %d times without a verdict", mysqlMaxRounds)}, nil
		}
		// An auth switch (0xfe) or more data (0x01): answer with an empty
		// password, which the server refuses or lets in.
		reply = nil
	}
}

// mysqlPacket reads one packet: a 3-byte little-endian length, a sequence
// number, the payload.
func mysqlPacket(br *bufio.Reader) (seq byte, payload []byte, err error) {
	head, err := br.Peek(4)
	if err != nil {
		if len(head) > 0 && errors.Is(err, io.EOF) {
			return 0, nil, &badBytesError{b: head}
		}
		return 0, nil, err
	}
	n := int(head[0]) | int(head[1])<<8 | int(head[2])<<16
	if n > mysqlMaxPacket {
		b, _ := br.Peek(16)
		return 0, nil, &badBytesError{b: b}
	}
	p := make([]byte, 4+n)
	if _, err := io.ReadFull(br, p); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, &badBytesError{b: p}
		}
		return 0, nil, err
	}
	return p[3], p[4:], nil
}

// mysqlFrame puts payload in a packet of sequence seq.
func mysqlFrame(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// mysqlGreeting is what a server's first packet says.
type mysqlGreeting struct {
	version  string
	scramble []byte      // the authentication plugin's data (the salt)
	plugin   string      // the authentication plugin the server proposes
	err      *mysqlError // the error the server sent instead of a greeting
}

// mysqlError is an ERR packet.
type mysqlError struct {
	code  uint16
	state string // SQLSTATE, when the packet has one
	msg   string
}

func (e mysqlError) String() string {
	if e.state != "" {
		return fmt.Sprintf("ERROR %d (%s): %s", e.code, e.state, e.msg)
	}
	return fmt.Sprintf("ERROR %d: %s", e.code, e.msg)
}

var errNotGreeting = errors.New("not a MySQL greeting")

// mysqlParseGreeting reads a HandshakeV10 packet, or the ERR packet a
// server sends instead (it has no SQLSTATE then).
func mysqlParseGreeting(p []byte) (mysqlGreeting, error) {
	if len(p) > 0 && p[0] == 0xff {
		e, ok := mysqlParseError(p, false)
		if !ok {
			return mysqlGreeting{}, errNotGreeting
		}
		return mysqlGreeting{err: &e}, nil
	}
	if len(p) < 2 || p[0] != 10 {
		return mysqlGreeting{}, errNotGreeting
	}
	end := bytes.IndexByte(p[1:], 0)
	if end < 0 {
		return mysqlGreeting{}, errNotGreeting
	}
	g := mysqlGreeting{version: string(p[1 : 1+end])}
	// MariaDB puts "5.5.5-" before its version for old replication clients.
	g.version = strings.TrimPrefix(g.version, "5.5.5-")
	rest := p[1+end+1:]
	// connection id 4, scramble 8, filler 1, capabilities 2, charset 1,
	// status 2, capabilities 2, scramble length 1, reserved 10, scramble
	// max(13, length-8), plugin name.
	if len(rest) < 31 {
		return g, nil // a pre-4.1 server: no plugin
	}
	caps := uint32(binary.LittleEndian.Uint16(rest[13:])) | uint32(binary.LittleEndian.Uint16(rest[18:]))<<16
	if caps&mysqlPluginAuth == 0 {
		return g, nil
	}
	n := max(13, int(rest[20])-8)
	if len(rest) < 31+n {
		return g, nil
	}
	g.scramble = append(append([]byte{}, rest[4:12]...), bytes.TrimRight(rest[31:31+n], "\x00")...)
	plugin := rest[31+n:]
	if i := bytes.IndexByte(plugin, 0); i >= 0 {
		plugin = plugin[:i]
	}
	g.plugin = string(plugin)
	return g, nil
}

// mysqlParseError reads an ERR packet: 0xff, a code, with protocol 4.1 a
// '#' and a SQLSTATE, and the message.
func mysqlParseError(p []byte, has41 bool) (mysqlError, bool) {
	if len(p) < 3 || p[0] != 0xff {
		return mysqlError{}, false
	}
	e := mysqlError{code: binary.LittleEndian.Uint16(p[1:])}
	rest := p[3:]
	if has41 && len(rest) >= 6 && rest[0] == '#' {
		e.state, rest = string(rest[1:6]), rest[6:]
	}
	e.msg = strings.ToValidUTF8(string(rest), "?")
	return e, true
}

// mysqlHandshakeResponse is a HandshakeResponse41 for user with the
// authentication data auth (empty: an empty password), naming the plugin
// the server proposed.
func mysqlHandshakeResponse(user, db, plugin string, auth []byte) []byte {
	caps := uint32(mysqlLongPassword | mysqlProtocol41 | mysqlSecureConnection | mysqlPluginAuth)
	if db != "" {
		caps |= 1 << 3 // CLIENT_CONNECT_WITH_DB
	}
	if plugin == "" {
		plugin = "mysql_native_password"
	}
	b := binary.LittleEndian.AppendUint32(nil, caps)
	b = binary.LittleEndian.AppendUint32(b, 1<<24) // max packet size
	b = append(b, 45)                              // utf8mb4_general_ci
	b = append(b, make([]byte, 23)...)
	b = append(append(b, user...), 0)
	b = append(b, byte(len(auth)))
	b = append(b, auth...)
	if db != "" {
		b = append(append(b, db...), 0)
	}
	return append(append(b, plugin...), 0)
}

// mysqlJudge turns an ERR packet into a Result; when says where it came.
func mysqlJudge(e mysqlError, when string) Result {
	quoted := e.String()
	switch e.code {
	case mysqlTooManyConnections, mysqlUserTooManyConns:
		return Result{Cause: TooManyConnections, State: "too many connections",
			Detail: "the server is at its connection limit (max_connections), it answered " + when + ": " + quoted}
	case mysqlHostBlocked:
		return Result{Cause: HostBlocked, State: "host blocked",
			Detail: "the server blocks this host after too many connection errors (max_connect_errors), " +
				"it answered " + when + ": " + quoted + "; unblock it with FLUSH HOSTS (mariadb-admin flush-hosts)"}
	case mysqlShutdown:
		return Result{Cause: NotReady, State: "shutting down", Detail: "the server answered " + when + ": " + quoted}
	case mysqlAccessDenied, mysqlHostNotAllowed:
		return Result{Ready: true, State: "accepting",
			Detail: "the server checked the login and refused it, so it accepts connections: " + quoted}
	}
	return Result{Cause: AppError, State: "error", Detail: "the server answered " + when + " with an error: " + quoted}
}
