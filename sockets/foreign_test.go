package sockets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lsofTable parses a recorded lsof -F output into a Table, as List on macOS.
func lsofTable(t *testing.T, file string, opt Options) Table {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "macos", file))
	if err != nil {
		t.Fatal(err)
	}
	var socks []Socket
	if err := parseLsof(bytes.NewReader(b), func(s Socket) error { socks = append(socks, s); return nil }); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return tableOf(socks, opt, "lsof", nil)
}

// lines renders a table as reach ports prints its rows: proto, local,
// remote, state, queues and owner.
func lines(tab Table) string {
	var b strings.Builder
	for _, s := range tab.Sockets {
		fmt.Fprintf(&b, "%s %s %s %s %d/%d %s\n", s.Proto, s.Local, s.Remote, s.State, s.RecvQ, s.SendQ, s.Owner())
	}
	return b.String()
}

func TestLsofRecorded(t *testing.T) {
	for _, tc := range []struct {
		file string
		opt  Options
		want string
	}{
		{"macos12-lsof.txt", Options{}, `
tcp 0.0.0.0:5000 0.0.0.0:0 LISTEN 0/0 ControlCenter (pid 588)
tcp 0.0.0.0:7000 0.0.0.0:0 LISTEN 0/0 ControlCenter (pid 588)
tcp6 [::]:7000 [::]:0 LISTEN 0/0 ControlCenter (pid 588)
tcp 127.0.0.1:8000 0.0.0.0:0 LISTEN 0/0 Python (pid 4242)
tcp 0.0.0.0:49152 0.0.0.0:0 LISTEN 0/0 rapportd (pid 312)
tcp6 [::]:49152 [::]:0 LISTEN 0/0 rapportd (pid 312)
`},
		{"macos12-lsof.txt", Options{All: true, Port: 8000}, `
tcp 127.0.0.1:8000 127.0.0.1:50412 ESTABLISHED 0/0 Python (pid 4242)
tcp 127.0.0.1:8000 0.0.0.0:0 LISTEN 0/0 Python (pid 4242)
`},
		{"macos12-lsof.txt", Options{All: true, Process: "google chrome helper"}, `
tcp 198.18.0.23:50233 198.19.1.10:443 ESTABLISHED 0/0 Google Chrome Helper (pid 611)
tcp6 [fe80::1c2d:3e4f:5a6b:7c8d%4]:50301 [fe80::8a2b:1ff:fe00:1%4]:22 CLOSE_WAIT 0/0 Google Chrome Helper (pid 611)
`},
		// Two node workers share one listener: one socket, both pids.
		{"macos14-lsof.txt", Options{}, `
tcp 0.0.0.0:22 0.0.0.0:0 LISTEN 0/0 launchd (pid 1)
tcp6 [::]:22 [::]:0 LISTEN 0/0 launchd (pid 1)
tcp6 [::]:3000 [::]:0 LISTEN 3/0 node (pids 8021, 8022)
tcp 127.0.0.1:5432 0.0.0.0:0 LISTEN 0/0 postgres (pid 733)
tcp6 [::1]:5432 [::]:0 LISTEN 0/0 postgres (pid 733)
tcp6 [::]:8080 [::]:0 LISTEN 0/0 com.docker.backend (pid 9410)
`},
		{"macos14-lsof.txt", Options{All: true, PID: 9410}, `
tcp6 [::]:8080 [::]:0 LISTEN 0/0 com.docker.backend (pid 9410)
tcp 127.0.0.1:61012 127.0.0.1:8080 SYN_SENT 0/0 com.docker.backend (pid 9410)
tcp 198.18.0.40:61020 198.19.2.2:443 FIN_WAIT2 0/0 com.docker.backend (pid 9410)
`},
		// macOS 15's lsof here reported the state alone (no TQR/TQS).
		{"macos15-lsof.txt", Options{All: true}, `
tcp 0.0.0.0:8000 0.0.0.0:0 LISTEN 0/0 Python (pid 4242)
tcp6 [::ffff:127.0.0.1]:9092 [::]:0 LISTEN 0/0 java (pid 5001)
tcp6 [::]:9093 [::]:0 LISTEN 0/0 java (pid 5001)
tcp 127.0.0.1:49700 0.0.0.0:0 LISTEN 0/0 Code Helper (Plugin) (pid 6100)
tcp 127.0.0.1:49701 127.0.0.1:49700 SYN_RECV 0/0 Code Helper (Plugin) (pid 6100)
tcp 198.18.0.77:53013 198.19.3.3:5223 ESTABLISHED 0/0 identityservicesd (pid 502)
`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := lines(lsofTable(t, tc.file, tc.opt))
			if want := strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("%+v:\ngot\n%swant\n%s", tc.opt, got, want)
			}
		})
	}
}

// A socket on [::ffff:127.0.0.1] takes IPv4 connections to 127.0.0.1 only;
// the doctor asks Accepts, whatever system listed the socket.
func TestLsofAccepts(t *testing.T) {
	tab := lsofTable(t, "macos15-lsof.txt", Options{Port: 9092})
	if len(tab.Sockets) != 1 {
		t.Fatalf("want one socket on 9092, got %v", tab.Sockets)
	}
	s := tab.Sockets[0]
	if !s.Accepts(netip.MustParseAddrPort("127.0.0.1:9092")) || s.Accepts(netip.MustParseAddrPort("198.18.0.77:9092")) {
		t.Errorf("%v: wrong Accepts", s)
	}
}

func TestLsofErrors(t *testing.T) {
	for _, in := range []string{
		"f3\ntIPv4\nPTCP\nn*:80\n",            // a file before any process
		"pabc\n",                              // pid not a number
		"p1\nclaunchd\nf3\ntIPv4\nPTCP\nn*\n", // no port
		"p1\nclaunchd\nf3\ntIPv4\nPTCP\nn*:99999\n",
		"p1\nclaunchd\nf3\ntIPv4\nPTCP\nnlocalhost:80\n", // a name: -n was not given
		"p1\nclaunchd\nf3\ntIPv4\nPTCP\nTST=LISTEN\n",    // no address
		"p1\nclaunchd\nf3\ntIPv4\nPTCP\nn*:80\nTQR=x\n",
	} {
		err := parseLsof(strings.NewReader(in), func(Socket) error { return nil })
		if !errors.Is(err, ErrLsofSyntax) {
			t.Errorf("%q: got %v, want ErrLsofSyntax", in, err)
		}
	}
}

func FuzzParseLsof(f *testing.F) {
	for _, file := range []string{"macos12-lsof.txt", "macos14-lsof.txt", "macos15-lsof.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "macos", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var socks []Socket
		err := parseLsof(bytes.NewReader(b), func(s Socket) error { socks = append(socks, s); return nil })
		if err != nil {
			if !errors.Is(err, ErrLsofSyntax) && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for _, s := range socks {
			if !s.Local.IsValid() || len(s.Processes) != 1 || (s.Proto != "tcp" && s.Proto != "tcp6") {
				t.Fatalf("half-parsed socket: %+v", s)
			}
		}
		tab := tableOf(socks, Options{All: true}, "lsof", nil)
		if len(tab.Sockets) > len(socks) {
			t.Fatalf("merging made sockets: %d from %d", len(tab.Sockets), len(socks))
		}
	})
}

func readWinTable(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// names stands for QueryFullProcessImageName: pids it does not know are
// refused, as Windows refuses an unelevated caller another user's service.
func names(pid int) (string, error) {
	exe, ok := map[int]string{
		4242: `C:\Users\ana\AppData\Local\Programs\Python\Python312\python.exe`,
		9120: `C:\Program Files\Google\Chrome\Application\chrome.exe`,
		5310: `C:\Windows\System32\curl.exe`,
		7344: `C:\Windows\System32\OpenSSH\ssh.exe`,
		3980: `C:\Program Files\Docker\Docker\resources\com.docker.backend.exe`,
	}[pid]
	if !ok {
		return "", fmt.Errorf("open process %d: Access is denied", pid)
	}
	return exe, nil
}

func winTable(t *testing.T, opt Options) Table {
	t.Helper()
	var rows []winRow
	for _, f := range []struct {
		file string
		v6   bool
	}{{"win11-tcp4.bin", false}, {"win11-tcp6.bin", true}} {
		r, err := parseTCPTable(readWinTable(t, f.file), f.v6)
		if err != nil {
			t.Fatalf("%s: %v", f.file, err)
		}
		rows = append(rows, r...)
	}
	socks, warnings := winSockets(rows, names)
	return tableOf(socks, opt, "iphlpapi", warnings)
}

func TestWindowsTCPTable(t *testing.T) {
	tab := winTable(t, Options{})
	want := `tcp 0.0.0.0:135 0.0.0.0:0 LISTEN 0/0 process (pid 1044)
tcp6 [::]:135 [::]:0 LISTEN 0/0 process (pid 1044)
tcp 198.18.0.23:139 0.0.0.0:0 LISTEN 0/0 System (pid 4)
tcp 0.0.0.0:445 0.0.0.0:0 LISTEN 0/0 System (pid 4)
`
	if got := lines(tab); !strings.HasPrefix(got, want) {
		t.Errorf("got\n%swant it to start with\n%s", got, want)
	}
	// System (pid 4) is named without opening it; the services are not.
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "4 processes could not be named (pid 812, 1044, 3412, 6872)") {
		t.Errorf("warnings: %q", tab.Warnings)
	}
	got := lines(winTable(t, Options{All: true, Port: 8000}))
	want = `tcp 127.0.0.1:8000 127.0.0.1:50201 ESTABLISHED 0/0 python.exe (pid 4242)
tcp 127.0.0.1:8000 0.0.0.0:0 LISTEN 0/0 python.exe (pid 4242)
`
	if got != want {
		t.Errorf("port 8000:\ngot\n%swant\n%s", got, want)
	}
	// Asked for without .exe, as on Linux and macOS.
	if got := lines(winTable(t, Options{Process: "Python"})); got != "tcp 127.0.0.1:8000 0.0.0.0:0 LISTEN 0/0 python.exe (pid 4242)\n" {
		t.Errorf("--process Python: %s", got)
	}
	got = lines(winTable(t, Options{All: true, Port: 50310}))
	want = "tcp6 [fe80::1c2d:3e4f:5a6b:7c8d%12]:50310 [fe80::8a2b:1ff:fe00:1%12]:22 ESTABLISHED 0/0 ssh.exe (pid 7344)\n"
	if got != want {
		t.Errorf("link-local:\ngot\n%swant\n%s", got, want)
	}
	// TIME_WAIT belongs to pid 0, the System Idle Process: no owner.
	for _, s := range winTable(t, Options{All: true}).Sockets {
		if s.State == StateTimeWait && len(s.Processes) != 0 {
			t.Errorf("TIME_WAIT with an owner: %v %v", s, s.Processes)
		}
	}
}

func TestWindowsTCPTableShort(t *testing.T) {
	b := readWinTable(t, "win11-tcp6.bin")
	if _, err := parseTCPTable(b[:len(b)-1], true); !errors.Is(err, ErrTCPTableSyntax) {
		t.Errorf("a table cut short: %v", err)
	}
	if _, err := parseTCPTable(b[:3], true); !errors.Is(err, ErrTCPTableSyntax) {
		t.Errorf("no count: %v", err)
	}
	// The same bytes read as IPv4 rows: the count fits, so they parse; the
	// caller says which family it asked for.
	huge := binary.LittleEndian.AppendUint32(nil, 1<<31)
	if _, err := parseTCPTable(huge, false); !errors.Is(err, ErrTCPTableSyntax) {
		t.Errorf("a count past the buffer: %v", err)
	}
}

// encodeRows writes rows back as GetExtendedTcpTable lays them out.
func encodeRows(rows []winRow, v6 bool) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(rows)))
	state := func(s State) uint32 {
		for i, w := range winStates {
			if w == s && s != "" {
				return uint32(i)
			}
		}
		var n uint32
		fmt.Sscanf(string(s), "STATE_%d", &n)
		return n
	}
	port := func(p uint16) []byte { return []byte{byte(p >> 8), byte(p), 0, 0} }
	for _, r := range rows {
		if !v6 {
			b = binary.LittleEndian.AppendUint32(b, state(r.State))
			a := r.Local.Addr().As4()
			b = append(append(b, a[:]...), port(r.Local.Port())...)
			a = r.Remote.Addr().As4()
			b = append(append(b, a[:]...), port(r.Remote.Port())...)
			b = binary.LittleEndian.AppendUint32(b, uint32(r.PID))
			continue
		}
		for _, ap := range []netip.AddrPort{r.Local, r.Remote} {
			a := ap.Addr().As16()
			var zone uint32
			fmt.Sscan(ap.Addr().Zone(), &zone)
			b = binary.LittleEndian.AppendUint32(append(b, a[:]...), zone)
			b = append(b, port(ap.Port())...)
		}
		b = binary.LittleEndian.AppendUint32(b, state(r.State))
		b = binary.LittleEndian.AppendUint32(b, uint32(r.PID))
	}
	return b
}

func FuzzParseTCPTable(f *testing.F) {
	f.Add(readWinTable(f, "win11-tcp4.bin"), false)
	f.Add(readWinTable(f, "win11-tcp6.bin"), true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		rows, err := parseTCPTable(b, v6)
		if err != nil {
			if !errors.Is(err, ErrTCPTableSyntax) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Every row read is every byte of it: writing the rows back gives
		// the table's bytes, but for zones on addresses that are not
		// link-local, which are not kept.
		size := winRow4Size
		if v6 {
			size = winRow6Size
		}
		back := encodeRows(rows, v6)
		in := b[:4+len(rows)*size]
		if v6 {
			in = bytes.Clone(in)
			for i := range rows {
				r := in[4+i*size:]
				for _, off := range []int{16, 40} {
					if a := netip.AddrFrom16([16]byte(r[off-16 : off])); !a.IsLinkLocalUnicast() {
						binary.LittleEndian.PutUint32(r[off:], 0)
					}
				}
				// Bytes 2 and 3 of a port's DWORD are not read.
				r[22], r[23], r[46], r[47] = 0, 0, 0, 0
			}
		} else {
			in = bytes.Clone(in)
			for i := range rows {
				r := in[4+i*size:]
				r[10], r[11], r[18], r[19] = 0, 0, 0, 0
			}
		}
		if !bytes.Equal(back, in) {
			t.Fatalf("rows %v do not give back the table:\n%x\n%x", rows, back, in)
		}
	})
}

// TestLsofUnescape: lsof -F prints a command's spaces as \x20 (macOS,
// recorded in imsnif/bandwhich#63) and a backslash as \\; ^X stays, being
// ambiguous with a caret.
func TestLsofUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`Google\x20Chrome\x20Helper`: "Google Chrome Helper",
		`Google\x20Ch`:               "Google Ch", // macOS cuts at 9 without +c 0
		`a\\b`:                       `a\b`,
		`tab\there`:                  "tab\there",
		`caret^K`:                    "caret^K",
		`bad\xZZ`:                    `bad\xZZ`,
		`end\x2`:                     `end\x2`,
		`end\`:                       `end\`,
		"plain":                      "plain",
	} {
		if got := lsofUnescape(in); got != want {
			t.Errorf("lsofUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}
