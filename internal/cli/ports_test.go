package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/sockets"
)

func portsRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestPorts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sockets are listed on Linux only")
	}
	ln := testnet.Listen(t)
	port := strconv.Itoa(int(testnet.AddrPort(ln).Port()))
	pid := strconv.Itoa(os.Getpid())

	code, out, errs := portsRun("ports", "--port", port)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "PROTO") ||
		!strings.Contains(lines[1], ln.Addr().String()) || !strings.Contains(lines[1], "(pid "+pid+")") {
		t.Fatalf("table:\n%s", out)
	}

	code, out, errs = portsRun("ports", "--pid", pid, "--json")
	if code != ExitOK {
		t.Fatalf("--json: exit %d, stderr %q", code, errs)
	}
	var tab sockets.Table
	if err := json.Unmarshal([]byte(out), &tab); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if len(tab.Sockets) != 1 || tab.Sockets[0].Local.String() != ln.Addr().String() || tab.Sockets[0].Processes[0].PID != os.Getpid() {
		t.Fatalf("--json sockets %+v", tab.Sockets)
	}

	ln.Close()
	code, out, errs = portsRun("ports", "--port", port)
	if code != ExitFail || out != "" || !strings.Contains(errs, "no listening TCP sockets matching port "+port) {
		t.Fatalf("closed port: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = portsRun("ports", "--port", port, "--json")
	if err := json.Unmarshal([]byte(out), &tab); code != ExitFail || err != nil || tab.Sockets == nil || len(tab.Sockets) != 0 {
		t.Fatalf("closed port --json: exit %d, %v, output %q", code, err, out)
	}
}

func TestPortsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"ports", "--port", "70000"},
		{"ports", "--pid", "-1"},
		{"ports", "--port", "0"},
		{"ports", "--pid", "0"},
		{"ports", "extra"},
		{"ports", "--process", ""},
		{"ports", "--process", " "},
		{"ports", "--netns", ""},
		{"ports", "--netns", ".."},
		{"ports", "--netns", "blue", "--all-namespaces"},
	} {
		if code, _, errs := portsRun(args...); code != ExitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, ExitUsage, errs)
		}
	}
}

// countingWriter counts Write calls: each is a system call on a real stdout.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

// TestPortsTableBuffered guards against writing the table cell by cell,
// which made `reach ports` slower than ss on thousands of sockets.
func TestPortsTableBuffered(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sockets are listed on Linux only")
	}
	var lns []net.Listener
	for range 3 {
		lns = append(lns, testnet.Listen(t))
	}
	var out countingWriter
	var errb bytes.Buffer
	code := Run(context.Background(), []string{"ports", "--pid", strconv.Itoa(os.Getpid())}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if rows := strings.Count(out.String(), "\n"); rows != len(lns)+1 || out.writes != 1 {
		t.Fatalf("%d lines in %d writes, want %d lines in 1 write:\n%s", rows, out.writes, len(lns)+1, out.String())
	}
}

// A dual-stack [::] socket takes IPv4 too; one with IPV6_V6ONLY does not.
// The table showed both as [::]:PORT; it marks the dual-stack one *:PORT as
// ss does, so "does anything take IPv4 on this port?" has an answer.
func TestPortsDualStack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sockets are listed on Linux only")
	}
	dual, err := net.Listen("tcp", ":0") // Go: [::] with IPV6_V6ONLY off
	if err != nil {
		t.Fatal(err)
	}
	defer dual.Close()
	only6, err := net.Listen("tcp6", "[::]:0") // Go: IPV6_V6ONLY on
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	defer only6.Close()
	if dual.Addr().(*net.TCPAddr).IP.To4() != nil {
		t.Skip("no dual-stack sockets on this host")
	}
	for _, tt := range []struct {
		ln   net.Listener
		want string
	}{
		{dual, "*:"},
		{only6, "[::]:"},
	} {
		port := strconv.Itoa(tt.ln.Addr().(*net.TCPAddr).Port)
		code, out, errs := portsRun("ports", "--port", port)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != ExitOK || len(lines) != 2 {
			t.Fatalf("port %s: exit %d, stdout %q, stderr %q", port, code, out, errs)
		}
		if f := strings.Fields(lines[1]); len(f) < 2 || f[1] != tt.want+port {
			t.Errorf("port %s: row %q, want LOCAL %s%s", port, lines[1], tt.want, port)
		}
	}
}
