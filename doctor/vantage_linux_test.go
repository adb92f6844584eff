package doctor

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/sockets"
)

// TestResolverFilesOwnRootOnly: a process with a mount namespace of its
// own that still sees this host's /etc (as under ip netns exec or
// unshare -m) has no resolver files of its own; one that binds its own
// resolv.conf has that one, and this host's hosts is still not its own.
func TestResolverFilesOwnRootOnly(t *testing.T) {
	netlab.Require(t)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, script string
		wantResolv   bool
	}{
		{"host's files", "echo ready && exec sleep 30", false},
		{"own resolv.conf", "mount --bind " + resolv + " /etc/resolv.conf && echo ready && exec sleep 30", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid := startUnshared(t, tc.script)
			r, h, dns := resolverFiles(sockets.Namespace{PID: pid})
			if h != "" {
				t.Errorf("hosts %q: it is this host's /etc/hosts, not the namespace's own", h)
			}
			switch {
			case tc.wantResolv && !strings.HasSuffix(r, "/root/etc/resolv.conf"):
				t.Errorf("resolv.conf %q (dns %q); want pid %d's own", r, dns, pid)
			case !tc.wantResolv && (r != "" || !strings.Contains(dns, "this host's")):
				t.Errorf("resolv.conf %q, dns %q; want none of its own, and lookups said to use this host's", r, dns)
			}
		})
	}
}

// startUnshared runs script under unshare -m, waits for it to say ready,
// and kills it when the test ends.
func startUnshared(t *testing.T, script string) int {
	t.Helper()
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("%v: said %q, %v", cmd.Args, line, err)
	}
	return cmd.Process.Pid
}
