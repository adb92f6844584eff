package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scripted is a connection to a server that answers with recorded bytes,
// whatever is written to it; it keeps what the client wrote.
type scripted struct {
	r       *bytes.Reader
	written bytes.Buffer
}

func (c *scripted) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *scripted) Write(b []byte) (int, error)      { return c.written.Write(b) }
func (c *scripted) Close() error                     { return nil }
func (c *scripted) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scripted) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scripted) SetDeadline(time.Time) error      { return nil }
func (c *scripted) SetReadDeadline(time.Time) error  { return nil }
func (c *scripted) SetWriteDeadline(time.Time) error { return nil }

func replay(t testing.TB, protocol string, server []byte) (Result, error, []byte) {
	t.Helper()
	c := &scripted{r: bytes.NewReader(server)}
	r, err := Check(context.Background(), c, Request{Protocol: protocol})
	return r, err, c.written.Bytes()
}

// pgMsg is a PostgreSQL message of type typ with body.
func pgMsg(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// pgErr is an ErrorResponse with fields "S", "C", "M"... given as pairs,
// as PostgreSQL 15 sends them.
func pgErr(fields ...string) []byte {
	var b strings.Builder
	for i := 0; i+1 < len(fields); i += 2 {
		b.WriteString(fields[i] + fields[i+1] + "\x00")
	}
	b.WriteString("\x00")
	return pgMsg('E', b.String())
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// The answers PostgreSQL 15 gave the real servers of db_lab_linux_test.go.
var pgCases = []struct {
	name   string
	server []byte
	ready  bool
	cause  Cause
	state  string
	detail string // a substring of Detail
	ver    string
}{
	{"no such role (trust)", pgErr("S", "FATAL", "V", "FATAL", "C", "28000", "M", `role "reach:no-user" does not exist`,
		"F", "miscinit.c", "L", "694", "R", "InitializeSessionUserId"), true, "", "accepting", "28000", ""},
	{"scram asked", pgMsg('R', "\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"), true, "", "accepting", "SASL", ""},
	{"md5 asked", pgMsg('R', "\x00\x00\x00\x05abcd"), true, "", "accepting", "MD5", ""},
	{"no pg_hba entry", pgErr("S", "FATAL", "C", "28000", "M",
		`no pg_hba.conf entry for host "127.0.0.1", user "reach:no-user", database "reach:no-user", no encryption`),
		true, "", "accepting", "pg_hba", ""},
	{"no such database", pgErr("S", "FATAL", "C", "3D000", "M", `database "x" does not exist`), true, "", "accepting", "3D000", ""},
	{"starting up", pgErr("S", "FATAL", "V", "FATAL", "C", "57P03", "M", "the database system is starting up"),
		false, NotReady, "starting up", "57P03", ""},
	{"shutting down", pgErr("S", "FATAL", "C", "57P03", "M", "the database system is shutting down"),
		false, NotReady, "shutting down", "shutting down", ""},
	{"in recovery", pgErr("S", "FATAL", "C", "57P03", "M", "the database system is in recovery mode"),
		false, NotReady, "in recovery", "recovery", ""},
	{"standby, hot_standby off", pgErr("S", "FATAL", "V", "FATAL", "C", "57P03", "M",
		"the database system is not accepting connections", "D", "Hot standby mode is disabled."),
		false, NotReady, "not accepting connections", "Hot standby mode is disabled.", ""},
	{"not yet accepting", pgErr("S", "FATAL", "C", "57P03", "M", "the database system is not yet accepting connections",
		"D", "Consistent recovery state has not been yet reached."),
		false, NotReady, "not yet accepting connections", "Consistent", ""},
	{"too many clients", pgErr("S", "FATAL", "V", "FATAL", "C", "53300", "M", "sorry, too many clients already"),
		false, TooManyConnections, "too many clients", "53300", ""},
	{"out of memory", pgErr("S", "FATAL", "C", "53200", "M", "out of memory"), false, AppError, "error", "53200", ""},
	{"trusted login", cat(pgMsg('R', "\x00\x00\x00\x00"), pgMsg('S', "application_name\x00reach\x00"),
		pgMsg('S', "server_version\x0015.18 (Debian 15.18-0+deb12u1)\x00"), pgMsg('K', "\x00\x00\x01\x02abcd"),
		pgMsg('Z', "I")), true, "", "accepting", "logged in", "15.18 (Debian 15.18-0+deb12u1)"},
	{"a notice first", cat(pgMsg('N', "SWARNING\x00Mhm\x00\x00"), pgMsg('R', "\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00")),
		true, "", "accepting", "SASL", ""},
	{"could not fork (old protocol)", []byte("Ecould not fork new process for connection: Resource temporarily unavailable\n\x00"),
		false, AppError, "error", "could not fork", ""},
	{"HTTP", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), false, WrongProtocol, "not PostgreSQL", "plain HTTP", ""},
	{"TLS alert", []byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46}, false, WrongProtocol, "not PostgreSQL", "TLS", ""},
	{"MySQL greeting", mysqlGreeting1011, false, WrongProtocol, "not PostgreSQL", "", ""},
	{"huge length", []byte("E\x7f\x00\x00\x00"), false, WrongProtocol, "not PostgreSQL", "", ""},
	{"short auth request", pgMsg('R', "\x00\x00"), false, WrongProtocol, "not PostgreSQL", "", ""},
	{"endless parameters", bytes.Repeat(pgMsg('S', "a\x00b\x00"), 100), false, AppError, "", "more than 64 messages", ""},
}

func TestPostgresAnswers(t *testing.T) {
	for _, c := range pgCases {
		t.Run(c.name, func(t *testing.T) {
			r, err, wrote := replay(t, "postgres", c.server)
			if err != nil {
				t.Fatalf("error %v, want a result", err)
			}
			if r.Ready != c.ready || r.Cause != c.cause || r.State != c.state || r.Version != c.ver ||
				!strings.Contains(r.Detail, c.detail) {
				t.Errorf("got %+v\nwant ready=%v cause=%q state=%q version=%q detail ~ %q", r, c.ready, c.cause, c.state, c.ver, c.detail)
			}
			// The startup for NoSuchUser, then a Terminate.
			if !bytes.HasPrefix(wrote, pgStartup(NoSuchUser, NoSuchUser)) || !bytes.HasSuffix(wrote, []byte{'X', 0, 0, 0, 4}) {
				t.Errorf("the client wrote % x, want the startup message and a Terminate", wrote)
			}
		})
	}
}

func TestPostgresStartupMessage(t *testing.T) {
	got := pgStartup("u", "d")
	want := "\x00\x00\x00\x32\x00\x03\x00\x00user\x00u\x00database\x00d\x00application_name\x00reach\x00\x00"
	if string(got) != want {
		t.Errorf("pgStartup = %q, want %q", got, want)
	}
}

// ioCases are servers that close or break the connection: an I/O error,
// never a Result with a Cause.
func TestDatabaseIOErrors(t *testing.T) {
	for _, c := range []struct{ protocol, server string }{
		{"postgres", ""},
		{"postgres", "R\x00\x00\x00\x0c\x00\x00"}, // cut in the middle of a message
		{"mysql", ""},
		{"redis", ""},
	} {
		_, err, _ := replay(t, c.protocol, []byte(c.server))
		var ae *Error
		if err == nil || !errors.As(err, &ae) || !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s answered %q: error %v, want an *app.Error wrapping EOF", c.protocol, c.server, err)
		}
	}
}

// mysqlGreeting1011 is MariaDB 10.11's greeting, as the real server sent it.
var mysqlGreeting1011 = []byte("d\x00\x00\x00\n5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x14\x00\x00\x00m]j|Q_k{\x00\xfe\xf7\x08\x02\x00\xff\x81\x15" +
	"\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00G1_l!Y\"836U,\x00mysql_native_password\x00")

// mysqlPkt is a packet of sequence seq.
func mysqlPkt(seq byte, payload string) []byte { return mysqlFrame(seq, []byte(payload)) }

var mysqlCases = []struct {
	name   string
	server []byte
	ready  bool
	cause  Cause
	state  string
	detail string
	ver    string
	quit   bool // the client logged out with COM_QUIT
}{
	{"access denied", cat(mysqlGreeting1011, mysqlPkt(2, "\xff\x15\x04#28000Access denied for user 'reach:no-user'@'monitor.lab' (using password: NO)")),
		true, "", "accepting", "1045 (28000)", "10.11.19-MariaDB-0+deb12u1", false},
	{"auth switch, then denied", cat(mysqlGreeting1011, mysqlPkt(2, "\xfecaching_sha2_password\x00abcdefghijklmnopqrst\x00"),
		mysqlPkt(4, "\xff\x15\x04#28000Access denied")), true, "", "accepting", "1045", "10.11.19-MariaDB-0+deb12u1", false},
	{"anonymous account lets it in", cat(mysqlGreeting1011, mysqlPkt(2, "\x00\x00\x00\x02\x00\x00\x00")),
		true, "", "accepting", "logged in", "10.11.19-MariaDB-0+deb12u1", true},
	{"too many connections", mysqlPkt(0, "\xff\x10\x04Too many connections"), false, TooManyConnections, "too many connections", "1040", "", false},
	{"too many after the login", cat(mysqlGreeting1011, mysqlPkt(2, "\xff\x10\x04#08004Too many connections")),
		false, TooManyConnections, "too many connections", "1040 (08004)", "10.11.19-MariaDB-0+deb12u1", false},
	{"host blocked", mysqlPkt(0, "\xff\x69\x04Host '127.0.0.2' is blocked because of many connection errors; unblock with 'mariadb-admin flush-hosts'"),
		false, HostBlocked, "host blocked", "1129", "", false},
	{"host not allowed", mysqlPkt(0, "\xff\x6a\x04Host '127.0.0.2' is not allowed to connect to this MariaDB server"),
		true, "", "accepting", "1130", "", false},
	{"shutting down", mysqlPkt(0, "\xff\x1d\x04Server shutdown in progress"), false, NotReady, "shutting down", "1053", "", false},
	{"other error", mysqlPkt(0, "\xff\x13\x04Bad handshake"), false, AppError, "error", "1043", "", false},
	{"endless auth", cat(mysqlGreeting1011, mysqlPkt(2, "\x01\x04"), mysqlPkt(4, "\x01\x04"), mysqlPkt(6, "\x01\x04"), mysqlPkt(8, "\x01\x04")),
		false, AppError, "", "4 times", "10.11.19-MariaDB-0+deb12u1", false},
	{"old server, no plugin", cat(mysqlPkt(0, "\x0a5.0.96\x00\x01\x00\x00\x00abcdefgh\x00\x00\x82"), mysqlPkt(2, "\xff\x15\x04#28000Access denied")),
		true, "", "accepting", "1045", "5.0.96", false},
	{"HTTP", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), false, WrongProtocol, "not MySQL", "", "", false},
	{"SSH", []byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), false, WrongProtocol, "not MySQL", "SSH", "", false},
	{"PostgreSQL-sized packet", []byte("\xff\xff\xff\x00\x0a"), false, WrongProtocol, "not MySQL", "", "", false},
	{"greeting cut short", mysqlGreeting1011[:40], false, WrongProtocol, "not MySQL", "", "", false},
}

func TestMySQLAnswers(t *testing.T) {
	for _, c := range mysqlCases {
		t.Run(c.name, func(t *testing.T) {
			r, err, wrote := replay(t, "mysql", c.server)
			if err != nil {
				t.Fatalf("error %v, want a result", err)
			}
			if r.Ready != c.ready || r.Cause != c.cause || r.State != c.state || r.Version != c.ver ||
				!strings.Contains(r.Detail, c.detail) {
				t.Errorf("got %+v\nwant ready=%v cause=%q state=%q version=%q detail ~ %q", r, c.ready, c.cause, c.state, c.ver, c.detail)
			}
			if quit := bytes.HasSuffix(wrote, []byte{1, 0, 0, 0, 1}); quit != c.quit {
				t.Errorf("COM_QUIT sent: %v, want %v (wrote % x)", quit, c.quit, wrote)
			}
		})
	}
}

// TestMySQLHandshakeResponse checks the login the check sends: protocol
// 4.1, NoSuchUser, an empty password, the server's plugin, sequence 1.
func TestMySQLHandshakeResponse(t *testing.T) {
	_, _, wrote := replay(t, "mysql", cat(mysqlGreeting1011, mysqlPkt(2, "\xff\x15\x04#28000Access denied")))
	seq, p, err := mysqlPacket(bufioReader(wrote))
	if err != nil || seq != 1 {
		t.Fatalf("packet %d, %v", seq, err)
	}
	caps := binary.LittleEndian.Uint32(p)
	if caps&mysqlProtocol41 == 0 || caps&mysqlPluginAuth == 0 || caps&mysqlSecureConnection == 0 {
		t.Errorf("capabilities %#x", caps)
	}
	rest := string(p[32:])
	if want := NoSuchUser + "\x00\x00mysql_native_password\x00"; rest != want {
		t.Errorf("user, auth, plugin = %q, want %q", rest, want)
	}
}

func TestMySQLGreetingScramble(t *testing.T) {
	g, err := mysqlParseGreeting(mysqlGreeting1011[4:])
	if err != nil {
		t.Fatal(err)
	}
	if string(g.scramble) != "m]j|Q_k{G1_l!Y\"836U," || g.plugin != "mysql_native_password" {
		t.Errorf("scramble %q plugin %q", g.scramble, g.plugin)
	}
}

var redisCases = []struct {
	name   string
	server string
	ready  bool
	cause  Cause
	state  string
	detail string
}{
	{"PONG", "+PONG\r\n", true, "", "PONG", ""},
	{"PONG as a bulk string", "$4\r\nPONG\r\n", true, "", "PONG", ""},
	{"requirepass", "-NOAUTH Authentication required.\r\n", true, "", "auth required", `"-NOAUTH Authentication required."`},
	{"ACL without PING", "-NOPERM this user has no permissions to run the 'ping' command\r\n", true, "", "auth required", "NOPERM"},
	{"loading", "-LOADING Redis is loading the dataset in memory\r\n", false, NotReady, "loading", "-LOADING Redis is loading"},
	{"master down", "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
		false, NotReady, "master down", "MASTERDOWN Link"},
	{"maxclients", "-ERR max number of clients reached\r\n", false, TooManyConnections, "too many clients", "max number"},
	{"protected mode", "-DENIED Redis is running in protected mode because protected mode is enabled\r\n",
		false, AppError, "error", "DENIED"},
	{"busy script", "-BUSY Redis is busy running a script.\r\n", false, AppError, "error", "BUSY"},
	{"something else", "+OK\r\n", false, AppError, "unexpected reply", `"+OK"`},
	{"a number", ":1\r\n", false, AppError, "unexpected reply", ""},
	{"HTTP", "HTTP/1.1 400 Bad Request\r\n\r\n", false, WrongProtocol, "not Redis", "plain HTTP"},
	{"no CRLF", "+PONG\n", false, WrongProtocol, "not Redis", ""},
	{"endless line", "+" + strings.Repeat("A", 5000) + "\r\n", false, WrongProtocol, "not Redis", ""},
	{"closed mid-line", "-LOADI", false, WrongProtocol, "not Redis", ""},
}

func TestRedisAnswers(t *testing.T) {
	for _, c := range redisCases {
		t.Run(c.name, func(t *testing.T) {
			r, err, wrote := replay(t, "redis", []byte(c.server))
			if err != nil {
				t.Fatalf("error %v, want a result", err)
			}
			if r.Ready != c.ready || r.Cause != c.cause || r.State != c.state || !strings.Contains(r.Detail, c.detail) {
				t.Errorf("got %+v\nwant ready=%v cause=%q state=%q detail ~ %q", r, c.ready, c.cause, c.state, c.detail)
			}
			if string(wrote) != "*1\r\n$4\r\nPING\r\n" {
				t.Errorf("wrote %q", wrote)
			}
		})
	}
}

// fuzzServer runs protocol's check against any server bytes: it must not
// panic, must give either an I/O error or a Result that is ready without a
// cause or not ready with one of the stable causes, and must stop reading.
func fuzzServer(f *testing.F, protocol string, seeds [][]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, server []byte) {
		r, err, _ := replay(t, protocol, server)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *app.Error", err)
			}
			return
		}
		if r.Ready == (r.Cause != "") {
			t.Fatalf("ready %v with cause %q", r.Ready, r.Cause)
		}
		if r.Cause != "" && !isCause(r.Cause) {
			t.Fatalf("cause %q is not a stable id", r.Cause)
		}
		if r.Detail == "" && !r.Ready {
			t.Fatalf("not ready without a detail: %+v", r)
		}
	})
}

func isCause(c Cause) bool {
	for _, k := range Causes {
		if k == c {
			return true
		}
	}
	return false
}

func FuzzPostgresAnswer(f *testing.F) {
	var seeds [][]byte
	for _, c := range pgCases {
		seeds = append(seeds, c.server)
	}
	fuzzServer(f, "postgres", seeds)
}

func FuzzMySQLAnswer(f *testing.F) {
	var seeds [][]byte
	for _, c := range mysqlCases {
		seeds = append(seeds, c.server)
	}
	fuzzServer(f, "mysql", seeds)
}

func FuzzRedisAnswer(f *testing.F) {
	var seeds [][]byte
	for _, c := range redisCases {
		seeds = append(seeds, []byte(c.server))
	}
	fuzzServer(f, "redis", seeds)
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
