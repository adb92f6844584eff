package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
)

func TestServePortInUse(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the holder of a port is looked up on Linux only")
	}
	held := testnet.Listen(t)
	freeAddr := testnet.ClosedPort(t).String()

	// The free address comes first: it must be released again when the second fails.
	code, out, errs := run(t, "serve", "--listen", freeAddr, "--listen", held.Addr().String())
	pid := strconv.Itoa(os.Getpid())
	if code != ExitFail || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	for _, want := range []string{
		"reach: listen " + held.Addr().String() + ": address already in use: held by ",
		"(pid " + pid + ")",
		"  try: stop ",
		"(kill " + pid + ")",
		"  try: or use another port",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if ln, err := net.Listen("tcp", freeAddr); err != nil {
		t.Errorf("the first address was left bound: %v", err)
	} else {
		ln.Close()
	}
}

// background runs reach serve with JSON logs until stop; next returns the
// next log record with a message, addr the first listening address.
type background struct {
	t      *testing.T
	lines  chan map[string]any
	cancel context.CancelFunc
	exit   chan int
	addr   string
}

func serveInBackground(t *testing.T, args ...string) *background {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{t: t, lines: make(chan map[string]any, 100), cancel: cancel, exit: make(chan int, 1)}
	go func() {
		defer close(b.lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				rec = map[string]any{"msg": "not JSON: " + sc.Text()}
			}
			b.lines <- rec
		}
	}()
	go func() {
		b.exit <- Run(ctx, append(append([]string{"serve"}, args...), "--log-format", "json"),
			Stdio{In: strings.NewReader(""), Out: io.Discard, Err: pw})
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		for range b.lines { // let the server finish writing its log
		}
	})
	b.addr, _ = b.next("listening")["addr"].(string)
	return b
}

func (b *background) next(msg string) map[string]any {
	b.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case rec, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("log ended before %q", msg)
			}
			if rec["msg"] == msg {
				return rec
			}
		case <-timeout:
			b.t.Fatalf("no %q log line", msg)
		}
	}
}

// stop does what SIGINT/SIGTERM do in cmd/reach and returns the exit status.
func (b *background) stop() int {
	b.t.Helper()
	b.cancel()
	select {
	case code := <-b.exit:
		return code
	case <-time.After(20 * time.Second):
		b.t.Fatal("reach serve did not exit after cancel")
		return -1
	}
}

func TestServeEchoAndShutdown(t *testing.T) {
	b := serveInBackground(t, "--listen", "127.0.0.1:0", "--drain", "5s")
	c, err := net.DialTimeout("tcp", b.addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %q: %v", b.addr, err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	rec := b.next("connection closed")
	if rec["bytes_in"] != 5.0 || rec["bytes_out"] != 5.0 || rec["remote"] != c.LocalAddr().String() {
		t.Errorf("connection log %v", rec)
	}
	if code := b.stop(); code != ExitOK {
		t.Fatalf("exit %d after shutdown, want 0", code)
	}
	b.next("stopped")
}

func TestServeAddressNotLocal(t *testing.T) {
	// 198.18.255.1 is on no interface here: the bind fails locally, nothing is sent.
	code, _, errs := run(t, "serve", "--listen", "198.18.255.1:7707")
	for _, want := range []string{"198.18.255.1 is not an address of this host (it has ", "127.0.0.1", "  try: listen on one of this host's addresses"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if code != ExitFail {
		t.Errorf("exit %d, want 1", code)
	}
}

func TestServeUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "--listen: none given; give at least one address to listen on, e.g. 127.0.0.1:7000"},
		{[]string{"serve", "--listen", "7000"}, `--listen "7000": missing host: use :7000 for every address`},
		{[]string{"serve", "--listen", "127.0.0.1:99999"}, "port 99999 out of range"},
		{[]string{"serve", "--listen", ":0", "--mode", "chargen"}, `--mode "chargen": unknown mode`},
		{[]string{"serve", "--listen", ":0", "--mode", "banner"}, `--banner: mode "banner" needs one: the text to send to each client`},
		{[]string{"serve", "--listen", ":0", "--mode", "echo", "--banner", "hi"}, `--banner "hi": only sent in mode "banner", not "echo"; drop the banner, or use mode "banner"`},
		{[]string{"serve", "--listen", ":0", "--mode", "discard", "--banner", "hi"}, `not "discard"`},
		{[]string{"serve", "--listen", ":0", "--log-format", "xml"}, "use text or json"},
		{[]string{"serve", "--listen", ":0", "--log-level", "loud"}, "use debug, info, warn or error"},
		{[]string{"serve", "--listen", ":0", "--max-conns", "-1"}, `--max-conns "-1": must be 0 (no limit) or more`},
		{[]string{"serve", "--listen", ":0", "--idle-timeout", "-1s"}, `--idle-timeout "-1s": must be 0 (none) or more`},
		{[]string{"serve", "--listen", ":0", "--drain", "-1s"}, `--drain "-1s": must be 0 (close at once) or more`},
		{[]string{"serve", "--listen", ":0", "--drain", "soon"}, "invalid argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := run(t, tt.args...)
			if code != ExitUsage || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, ExitUsage, tt.want)
			}
		})
	}
}

func TestServeBannerFlag(t *testing.T) {
	// --banner alone selects banner mode; the text gets its newline.
	b := serveInBackground(t, "--listen", "127.0.0.1:0", "--banner", "hello from reach")
	c, err := net.DialTimeout("tcp", b.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "hello from reach\n" {
		t.Fatalf("banner: %q, %v", got, err)
	}
	if code := b.stop(); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
}
