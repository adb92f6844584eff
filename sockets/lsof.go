package sockets

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// ErrLsofSyntax means lsof's field output (-F) could not be parsed.
var ErrLsofSyntax = errors.New("sockets: malformed lsof -F output")

// LsofArgs are the arguments macOS's List gives lsof: numeric addresses and
// ports (-n -P), TCP sockets only, whole command names (+c 0), and field
// output: per process p (pid), c (command), u (uid), L (login name); per
// file f (descriptor), t (IPv4 or IPv6), P (protocol), n (addresses) and T
// (TST= state, TQR=/TQS= queues where the system reports them).
//
// lsof rather than netstat -anv: netstat shows the pid only since macOS 10.15
// or so, with columns that moved between releases and a command name cut to
// a few letters or missing; lsof -F gives pid and command as tagged fields,
// the same on every macOS.
var LsofArgs = []string{"-nP", "-iTCP", "+c", "0", "-FpcuLftPnT"}

// parseLsof reads lsof -F output and calls fn for each TCP socket with its
// process. A socket several processes hold (a forked server's listener) is
// reported once per process; List merges them.
func parseLsof(r io.Reader, fn func(Socket) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var (
		proc     Process
		sock     Socket
		haveSock bool
		family   string
		line     int
	)
	flush := func() error {
		if !haveSock {
			return nil
		}
		haveSock = false
		if sock.Proto == "" {
			return nil // not TCP (lsof -iTCP lists only TCP; be safe)
		}
		if !sock.Local.IsValid() {
			return fmt.Errorf("%w: line %d: a socket of pid %d without an address", ErrLsofSyntax, line, proc.PID)
		}
		if sock.State == "" {
			sock.State = StateClose
		}
		sock.UID = proc.UID
		sock.Processes = []Process{proc}
		return fn(sock)
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" {
			continue
		}
		tag, val := text[0], text[1:]
		switch tag {
		case 'p':
			if err := flush(); err != nil {
				return err
			}
			pid, err := strconv.Atoi(val)
			if err != nil || pid < 0 {
				return fmt.Errorf("%w: line %d: pid %q", ErrLsofSyntax, line, val)
			}
			proc = Process{PID: pid, UID: -1}
		case 'c':
			proc.Command = lsofUnescape(val)
		case 'u':
			uid, err := strconv.Atoi(val)
			if err != nil {
				return fmt.Errorf("%w: line %d: uid %q", ErrLsofSyntax, line, val)
			}
			proc.UID = uid
			if proc.User == "" {
				proc.User = val
			}
		case 'L':
			proc.User = val
		case 'f':
			if err := flush(); err != nil {
				return err
			}
			if proc.PID == 0 && proc.Command == "" {
				return fmt.Errorf("%w: line %d: a file before any process", ErrLsofSyntax, line)
			}
			sock, haveSock, family = Socket{}, true, ""
		case 't':
			family = val
		case 'P':
			if !strings.EqualFold(val, "TCP") {
				sock.Proto = ""
				continue
			}
			sock.Proto = "tcp"
			if family == "IPv6" {
				sock.Proto = "tcp6"
			}
		case 'n':
			local, remote, err := parseLsofName(val, family == "IPv6")
			if err != nil {
				return fmt.Errorf("%w: line %d: %v", ErrLsofSyntax, line, err)
			}
			sock.Local, sock.Remote = local, remote
		case 'T':
			k, v, _ := strings.Cut(val, "=")
			switch k {
			case "ST":
				sock.State = lsofState(v)
			case "QR", "QS":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return fmt.Errorf("%w: line %d: queue %q", ErrLsofSyntax, line, val)
				}
				if k == "QR" {
					sock.RecvQ = uint32(n)
				} else {
					sock.SendQ = uint32(n)
				}
			}
		default:
			// Fields not asked for (lsof adds some, such as R, the parent
			// pid, on some versions): ignored.
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

// lsofState maps lsof's state names (the BSD ones: ESTABLISHED, LISTEN,
// SYN_RECEIVED, CLOSE_WAIT, FIN_WAIT_1, TIME_WAIT, ...) to ours.
func lsofState(s string) State {
	switch s {
	case "SYN_RECEIVED":
		return StateSynRecv
	case "FIN_WAIT_1":
		return StateFinWait1
	case "FIN_WAIT_2":
		return StateFinWait2
	case "CLOSED":
		return StateClose
	}
	return State(s)
}

// parseLsofName parses lsof's n field for a TCP socket: "*:8000",
// "127.0.0.1:8000", "[::1]:8000", "[fe80:4::1]:22", or a connection
// "198.18.0.2:50123->198.18.0.9:443". A wildcard is 0.0.0.0 or [::] by
// the socket's family.
func parseLsofName(s string, v6 bool) (local, remote netip.AddrPort, err error) {
	l, r, connected := strings.Cut(s, "->")
	if local, err = parseLsofAddr(l, v6); err != nil {
		return local, remote, err
	}
	if connected {
		remote, err = parseLsofAddr(r, v6)
		return local, remote, err
	}
	if v6 {
		remote = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	} else {
		remote = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	return local, remote, nil
}

func parseLsofAddr(s string, v6 bool) (netip.AddrPort, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("address %q has no port", s)
	}
	host, p := s[:i], s[i+1:]
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port %q", s, p)
	}
	var a netip.Addr
	switch {
	case host == "*" && v6:
		a = netip.IPv6Unspecified()
	case host == "*":
		a = netip.IPv4Unspecified()
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		a, err = parseKAME(host[1 : len(host)-1])
	default:
		a, err = netip.ParseAddr(host)
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %v", s, err)
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

// parseKAME parses an IPv6 address as macOS's lsof prints it, where a
// link-local address carries its interface index in the second group (the
// KAME stack's embedded scope: fe80:4::1 is fe80::1 on interface 4), and
// turns that into a zone.
func parseKAME(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.IsLinkLocalUnicast() {
		return a, err
	}
	b := a.As16()
	scope := uint16(b[2])<<8 | uint16(b[3])
	if scope == 0 {
		return a, nil
	}
	b[2], b[3] = 0, 0
	return netip.AddrFrom16(b).WithZone(strconv.Itoa(int(scope))), nil
}

// lsofUnescape undoes lsof's "safe printing" of a field: lsof prints a
// character iswprint rejects, and the space, as \xHH, a backslash as \\,
// and \b \f \n \r \t as such, so macOS's "Google Chrome Helper" arrives
// as Google\x20Chrome\x20Helper (recorded in imsnif/bandwhich#63). Other
// control characters come as ^X, which is ambiguous with a literal caret
// (lsof-org/lsof#130) and is left as printed.
func lsofUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch c := s[i+1]; c {
		case 'x':
			if i+3 < len(s) {
				if n, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
					b.WriteByte(byte(n))
					i += 3
					continue
				}
			}
			b.WriteByte(s[i])
		case '\\':
			b.WriteByte('\\')
			i++
		default:
			if k := strings.IndexByte("bfnrt", c); k >= 0 {
				b.WriteByte("\b\f\n\r\t"[k])
				i++
			} else {
				b.WriteByte(s[i])
			}
		}
	}
	return b.String()
}
