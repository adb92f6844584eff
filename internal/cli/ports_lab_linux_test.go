package cli

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
)

// TestPortsAllNamespaces lists a listener in a lab namespace: --all-namespaces
// and --netns show it with its namespace, the plain listing does not, and
// --json carries the same fields.
func TestPortsAllNamespaces(t *testing.T) {
	netlab.Require(t)
	h := netlab.New(t).Host("ports")
	ln := h.Listen(t, "tcp", "127.0.0.1:0")
	port := strconv.Itoa(int(testnet.AddrPort(ln).Port()))
	pid := strconv.Itoa(os.Getpid())

	for _, args := range [][]string{
		{"ports", "--all-namespaces", "--port", port},
		{"ports", "-A", "--port", port, "--all"},
		{"ports", "--netns", h.Name(), "--port", port},
		{"ports", "--netns", "/run/netns/" + h.Name(), "--port", port},
	} {
		code, out, errs := portsRun(args...)
		if code != ExitOK {
			t.Fatalf("%q: exit %d, stderr %q", args, code, errs)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var row []string
		for _, l := range lines[1:] {
			if f := strings.Fields(l); f[0] == h.Name() {
				row = f
			}
		}
		if f := strings.Fields(lines[0]); len(f) < 3 || f[0] != "NETNS" || f[1] != "CONTAINER" || f[2] != "PROTO" {
			t.Errorf("%q: heading %q", args, lines[0])
		}
		if row == nil || row[1] != "-" || row[3] != ln.Addr().String() || !strings.Contains(strings.Join(row, " "), "(pid "+pid+")") {
			t.Errorf("%q: no row for %v in %s:\n%s", args, ln.Addr(), h.Name(), out)
		}
	}
	// Without the flag, reach's own namespace only.
	if code, out, _ := portsRun("ports", "--port", port); strings.Contains(out, "(pid "+pid+")") {
		t.Errorf("plain ports lists the lab's socket (exit %d):\n%s", code, out)
	}

	code, out, errs := portsRun("ports", "-A", "--port", port, "--json")
	if code != ExitOK {
		t.Fatalf("--json: exit %d, stderr %q", code, errs)
	}
	var tab struct {
		Sockets []struct {
			Local     string
			Namespace *struct {
				Inode uint64
				Name  string
				Path  string
			}
		}
		Namespaces []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &tab); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	found := false
	for _, s := range tab.Sockets {
		if s.Namespace == nil {
			t.Fatalf("--json: socket %s without namespace", s.Local)
		}
		if s.Namespace.Name == h.Name() && s.Local == ln.Addr().String() && s.Namespace.Inode != 0 && s.Namespace.Path == "/run/netns/"+h.Name() {
			found = true
		}
	}
	if !found || !slices.ContainsFunc(tab.Namespaces, func(n struct{ Name string }) bool { return n.Name == h.Name() }) {
		t.Errorf("--json lacks %v in namespace %s:\n%s", ln.Addr(), h.Name(), out)
	}

	code, out, errs = portsRun("ports", "--netns", "reach-no-such-ns")
	if code != ExitFail || out != "" || !strings.Contains(errs, "ip netns list") {
		t.Errorf("unknown namespace: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
