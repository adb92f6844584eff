package sockets

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// diagMsg encodes an inet_diag_msg field by field, as the kernel lays it out.
func diagMsg(family, state uint8, src, dst netip.AddrPort, rq, wq, uid, inode uint32) []byte {
	b := make([]byte, sizeofDiagMsg+8)
	// An INET_DIAG_SHUTDOWN attribute, which the parser skips.
	binary.NativeEndian.PutUint16(b[sizeofDiagMsg:], 5)
	binary.NativeEndian.PutUint16(b[sizeofDiagMsg+2:], 8)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:], src.Port())
	binary.BigEndian.PutUint16(b[6:], dst.Port())
	s, d := src.Addr().As16(), dst.Addr().As16()
	if family == afInet {
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(b[8:], s4[:])
		copy(b[24:], d4[:])
	} else {
		copy(b[8:], s[:])
		copy(b[24:], d[:])
	}
	for i, v := range []uint32{7 /* expires */, rq, wq, uid, inode} {
		binary.NativeEndian.PutUint32(b[52+4*i:], v)
	}
	return b
}

func TestParseDiagMsg(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		in   []byte
		want Socket
	}{
		{"ipv4 listen", diagMsg(afInet, 10, ap("127.0.0.1:5432"), ap("0.0.0.0:0"), 3, 128, 107, 31337),
			Socket{Proto: "tcp", Local: ap("127.0.0.1:5432"), Remote: ap("0.0.0.0:0"), State: StateListen, RecvQ: 3, SendQ: 128, UID: 107, Inode: 31337}},
		{"ipv6 established", diagMsg(afInet6, 1, ap("[2001:db8::1]:443"), ap("[fd00::2]:50000"), 10, 20, 0, 99),
			Socket{Proto: "tcp6", Local: ap("[2001:db8::1]:443"), Remote: ap("[fd00::2]:50000"), State: StateEstablished, RecvQ: 10, SendQ: 20, Inode: 99}},
		{"unknown state", diagMsg(afInet, 200, ap("1.2.3.4:1"), ap("5.6.7.8:2"), 0, 0, 0, 0),
			Socket{Proto: "tcp", Local: ap("1.2.3.4:1"), Remote: ap("5.6.7.8:2"), State: "STATE_200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDiagMsg(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want.String() {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	attr := func(typ uint16, payload ...byte) []byte {
		b := make([]byte, (4+len(payload)+3)&^3)
		binary.NativeEndian.PutUint16(b, uint16(4+len(payload)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		copy(b[4:], payload)
		return b
	}
	v6 := diagMsg(afInet6, 10, ap("[::]:22"), ap("[::]:0"), 0, 128, 0, 1)[:sizeofDiagMsg]
	for _, tt := range []struct {
		name    string
		attrs   []byte
		want    bool
		wantErr bool
	}{
		{"v6only", append(attr(10, 6), attr(inetDiagSKV6Only, 1)...), true, false},
		{"dual-stack", attr(inetDiagSKV6Only, 0), false, false},
		{"flags in type", attr(0x8000|inetDiagSKV6Only, 1), true, false},
		{"empty v6only", attr(inetDiagSKV6Only), false, false},
		{"bad length", []byte{2, 0, 11, 0}, false, true},
		{"length past end", []byte{9, 0, 11, 0, 1}, false, true},
	} {
		s, err := parseDiagMsg(append(slices.Clone(v6), tt.attrs...))
		if (err != nil) != tt.wantErr || s.V6Only != tt.want {
			t.Errorf("%s: V6Only=%v err=%v; want %v, error %v", tt.name, s.V6Only, err, tt.want, tt.wantErr)
		}
	}
	if _, err := parseDiagMsg(make([]byte, sizeofDiagMsg-1)); !errors.Is(err, ErrShortDiagMsg) {
		t.Errorf("short message: err = %v, want ErrShortDiagMsg", err)
	}
	if _, err := parseDiagMsg(make([]byte, sizeofDiagMsg)); err == nil {
		t.Error("family 0: no error")
	}
}

func TestDiagRequest(t *testing.T) {
	b := diagRequest(afInet6, 1<<10)
	if len(b) != 56 || b[0] != afInet6 || b[1] != ipprotoTCP || binary.NativeEndian.Uint32(b[4:]) != 1<<10 {
		t.Fatalf("request % x", b)
	}
}

const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000002 00:00000000 00000000   107        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1538 01 0000000A:00000014 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1
`

const procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
`

func TestParseProcNet(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are from a little-endian host")
	}
	ap := netip.MustParseAddrPort
	tests := []struct {
		proto, in string
		want      []string
	}{
		{"tcp", procNetTCP, []string{
			Socket{Proto: "tcp", Local: ap("127.0.0.1:5432"), Remote: ap("0.0.0.0:0"), State: StateListen, RecvQ: 2, UID: 107, Inode: 31337}.String(),
			Socket{Proto: "tcp", Local: ap("127.0.0.1:40000"), Remote: ap("127.0.0.1:5432"), State: StateEstablished, RecvQ: 20, SendQ: 10, UID: 1000, Inode: 4242}.String(),
		}},
		{"tcp6", procNetTCP6, []string{
			Socket{Proto: "tcp6", Local: ap("[::1]:8080"), Remote: ap("[::]:0"), State: StateListen, Inode: 12345}.String(),
			Socket{Proto: "tcp6", Local: ap("[::ffff:127.0.0.1]:8080"), Remote: ap("[::ffff:127.0.0.1]:50000"), State: StateTimeWait}.String(),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			var got []string
			err := parseProcNet(strings.NewReader(tt.in), tt.proto, func(s Socket) error { got = append(got, s.String()); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseProcNetLineErrors(t *testing.T) {
	good := "0: 0100007F:1538 00000000:0000 0A 00000000:00000002 00:00000000 00000000 107 0 31337"
	for _, bad := range []string{
		"0: 0100007F:1538",
		strings.Replace(good, "0100007F:1538", "0100007F1538", 1),
		strings.Replace(good, "0100007F:1538", "0100007G:1538", 1),
		strings.Replace(good, "0100007F:1538", "100007F:1538", 1),
		strings.Replace(good, "0100007F:1538", "0100007F:15389", 1),
		strings.Replace(good, " 0A ", " ZZ ", 1),
		strings.Replace(good, "00000000:00000002", "0000000000000002", 1),
		strings.Replace(good, "00000000:00000002", "00000000:x", 1),
		strings.Replace(good, " 107 ", " -1 ", 1),
		strings.Replace(good, "31337", "inode", 1),
	} {
		if _, err := parseProcNetLine(bad, "tcp"); !errors.Is(err, ErrProcNetSyntax) {
			t.Errorf("parseProcNetLine(%q) err = %v, want ErrProcNetSyntax", bad, err)
		}
	}
	if _, err := parseProcNetLine(good, "tcp6"); !errors.Is(err, ErrProcNetSyntax) {
		t.Errorf("IPv4 line as tcp6: err = %v, want ErrProcNetSyntax", err)
	}
}

func TestParseProcStatus(t *testing.T) {
	tests := []struct {
		name, in string
		want     procStatus
		wantErr  bool
	}{
		{"sleeping", "Name:\tpostgres\nUmask:\t0077\nState:\tS (sleeping)\nTgid:\t812\nUid:\t107\t107\t107\t107\n", procStatus{"postgres", "sleeping", 107}, false},
		{"stopped", "Name:\tsleep\nState:\tT (stopped)\nUid:\t0\t0\t0\t0\n", procStatus{"sleep", "stopped", 0}, false},
		{"escaped name", "Name:\ta\\nb\\\\c\nState:\tR (running)\nUid:\t1\t2\t3\t4\n", procStatus{"a\nb\\c", "running", 1}, false},
		{"odd state", "Name:\tx\nState:\tQ (new)\nUid:\t5\n", procStatus{"x", "unknown (Q)", 5}, false},
		{"no uid", "Name:\tx\nState:\tS (sleeping)\n", procStatus{}, true},
		{"bad uid", "Name:\tx\nState:\tS (sleeping)\nUid:\tme\n", procStatus{}, true},
		{"empty state", "Name:\tx\nState:\t\nUid:\t1\n", procStatus{}, true},
		{"empty uid", "Name:\tx\nState:\tS\nUid:\t\n", procStatus{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStatus(tt.in)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Fatalf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrProcStatusSyntax) {
				t.Fatalf("err = %v, want ErrProcStatusSyntax", err)
			}
		})
	}
}

func TestParseSocketLink(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12345]", 0, false},
		{"/dev/null", 0, false},
		{"socket:[-1]", 0, false},
		{"socket:[1a]", 0, false},
		{"socket:[18446744073709551615]", math.MaxUint64, true},
		{"socket:[18446744073709551616]", 0, false},
		{"socket:[99999999999999999999]", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseSocketLink([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseSocketLink(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOwner(t *testing.T) {
	s := Socket{UID: 107}
	if got := s.Owner(); got != "unknown process (uid 107)" {
		t.Errorf("no process: %q", got)
	}
	s.Processes = []Process{{PID: 812, Command: "postgres"}}
	if got := s.Owner(); got != "postgres (pid 812)" {
		t.Errorf("one process: %q", got)
	}
	s.Processes = []Process{{PID: 10, Command: "nginx"}, {PID: 5, Command: "sh"}, {PID: 11, Command: "nginx"}}
	if got := s.Owner(); got != "nginx (pids 10, 11), sh (pid 5)" {
		t.Errorf("three processes: %q", got)
	}
}

func FuzzParseDiagMsg(f *testing.F) {
	ap := netip.MustParseAddrPort
	f.Add(diagMsg(afInet, 10, ap("127.0.0.1:5432"), ap("0.0.0.0:0"), 3, 128, 107, 31337))
	f.Add(diagMsg(afInet6, 1, ap("[::1]:443"), ap("[::1]:5000"), 0, 0, 0, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseDiagMsg(b)
		if err != nil {
			return
		}
		if !s.Local.IsValid() || !s.Remote.IsValid() || (s.Proto != "tcp" && s.Proto != "tcp6") {
			t.Fatalf("accepted message gave %+v", s)
		}
	})
}

func FuzzParseProcNetLine(f *testing.F) {
	for _, text := range []string{procNetTCP, procNetTCP6} {
		for _, l := range strings.Split(text, "\n")[1:] {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, proto := range []string{"tcp", "tcp6"} {
			s, err := parseProcNetLine(line, proto)
			if err != nil {
				continue
			}
			if s.Local.Addr().Is6() != (proto == "tcp6") {
				t.Fatalf("%s line gave address %v", proto, s.Local)
			}
		}
	})
}

func FuzzParseProcStatus(f *testing.F) {
	f.Add("Name:\tpostgres\nState:\tS (sleeping)\nUid:\t107\t107\t107\t107\n")
	f.Add("Name:\ta\\nb\nState:\tT (stopped)\nUid:\t0\n")
	f.Fuzz(func(t *testing.T, text string) {
		st, err := parseProcStatus(text)
		if err == nil && (st.State == "" || st.UID < 0) {
			t.Fatalf("accepted %q as %+v", text, st)
		}
	})
}

func TestCommandIs(t *testing.T) {
	tests := []struct {
		comm, name string
		want       bool
	}{
		{"postgres", "postgres", true},
		{"postgres", "POSTGRES", true},
		{"postgres", "postgre", false},
		{"postgres", "postgres-x", false},
		{"systemd-resolve", "systemd-resolved", true},
		{"systemd-resolve", "systemd-resolveX", true}, // the kernel cannot tell them apart
		{"systemd-resolv", "systemd-resolved", false},
	}
	for _, tt := range tests {
		if got := commandIs(tt.comm, tt.name); got != tt.want {
			t.Errorf("commandIs(%q, %q) = %v, want %v", tt.comm, tt.name, got, tt.want)
		}
	}
}

func TestParseDiagMsgV6Only(t *testing.T) {
	src := netip.MustParseAddrPort("[::]:443")
	for _, v6only := range []bool{false, true} {
		b := diagMsg(afInet6, kernelListen, src, netip.AddrPortFrom(netip.IPv6Unspecified(), 0), 0, 128, 0, 1)[:sizeofDiagMsg]
		attr := []byte{5, 0, inetDiagSKV6Only, 0, 0, 0, 0, 0}
		if v6only {
			attr[4] = 1
		}
		s, err := parseDiagMsg(append(b, attr...))
		if err != nil || s.V6Only != v6only {
			t.Errorf("v6only=%v: got %+v, %v", v6only, s, err)
		}
	}
}

func TestAccepts(t *testing.T) {
	ap := netip.MustParseAddrPort
	listen := func(proto, local string, v6only bool) Socket {
		return Socket{Proto: proto, Local: ap(local), State: StateListen, V6Only: v6only}
	}
	tests := []struct {
		s    Socket
		dst  string
		want bool
	}{
		{listen("tcp", "0.0.0.0:80", false), "198.18.0.2:80", true},
		{listen("tcp", "0.0.0.0:80", false), "198.18.0.2:81", false},
		{listen("tcp", "0.0.0.0:80", false), "[fd00::2]:80", false},
		{listen("tcp", "0.0.0.0:80", false), "[::ffff:198.18.0.2]:80", true},
		{listen("tcp", "127.0.0.1:80", false), "127.0.0.1:80", true},
		{listen("tcp", "127.0.0.1:80", false), "127.0.0.2:80", false},
		{listen("tcp", "127.0.0.1:80", false), "198.18.0.2:80", false},
		{listen("tcp6", "[::]:80", false), "198.18.0.2:80", true},
		{listen("tcp6", "[::]:80", false), "[fd00::2]:80", true},
		{listen("tcp6", "[::]:80", true), "198.18.0.2:80", false},
		{listen("tcp6", "[::]:80", true), "[::1]:80", true},
		{listen("tcp6", "[::1]:80", false), "[::1]:80", true},
		{listen("tcp6", "[::1]:80", false), "127.0.0.1:80", false},
		{listen("tcp6", "[::ffff:127.0.0.1]:80", false), "127.0.0.1:80", true},
		{listen("tcp6", "[::ffff:127.0.0.1]:80", false), "[::1]:80", false},
		{Socket{Proto: "tcp", Local: ap("0.0.0.0:80"), State: StateEstablished}, "127.0.0.1:80", false},
	}
	for _, tt := range tests {
		if got := tt.s.Accepts(ap(tt.dst)); got != tt.want {
			t.Errorf("%s %v (v6only %v) Accepts(%s) = %v, want %v", tt.s.Proto, tt.s.Local, tt.s.V6Only, tt.dst, got, tt.want)
		}
	}
}

func TestOptionsPorts(t *testing.T) {
	s := Socket{State: StateListen, Local: netip.MustParseAddrPort("0.0.0.0:5433")}
	for _, tt := range []struct {
		o    Options
		want bool
	}{
		{Options{}, true},
		{Options{Ports: func(p uint16) bool { return p == 5433 }}, true},
		{Options{Ports: func(p uint16) bool { return p == 5432 }}, false},
		{Options{Port: 5432, Ports: func(uint16) bool { return true }}, false},
	} {
		if got := tt.o.keep(&s); got != tt.want {
			t.Errorf("keep with %+v = %v, want %v", tt.o, got, tt.want)
		}
	}
}

func FuzzParseSocketLink(f *testing.F) {
	f.Add("socket:[12345]")
	f.Add("pipe:[1]")
	f.Add("socket:[18446744073709551616]")
	f.Fuzz(func(t *testing.T, s string) {
		// Differential: the straightforward string version.
		want, wantOK := uint64(0), false
		if mid, ok := strings.CutPrefix(s, "socket:["); ok {
			if mid, ok = strings.CutSuffix(mid, "]"); ok {
				if n, err := strconv.ParseUint(mid, 10, 64); err == nil {
					want, wantOK = n, true
				}
			}
		}
		if ino, ok := parseSocketLink([]byte(s)); ino != want || ok != wantOK {
			t.Fatalf("parseSocketLink(%q) = %d, %v; want %d, %v", s, ino, ok, want, wantOK)
		}
	})
}
