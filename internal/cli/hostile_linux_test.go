package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memLimit is the memory the hostile-input tests give reach: 256 MiB of
// data (RLIMIT_DATA, prlimit --data). Not --as: a Go program reserves
// about 800 MB of address space for its page allocator before main runs,
// so under --as=256MiB no Go binary starts at all, fixed or not. Since
// Linux 4.7 RLIMIT_DATA counts every private writable mapping, which is
// where a Go heap lives.
const memLimit = 256 << 20

// runLimited runs bin with args under memLimit, stdin from stdin (a path;
// empty for none), and returns its exit status, stderr and peak RSS.
func runLimited(t *testing.T, bin, stdin string, args ...string) (int, string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "prlimit", append([]string{"--data=" + strconv.Itoa(memLimit), bin}, args...)...)
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("reach %s still running after 30s", strings.Join(args, " "))
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
	return cmd.ProcessState.ExitCode(), errb.String(), rss
}

// TestHostileEndlessInputs gives every file and stream reach reads from a
// user's path /dev/zero: each ends, fast and under a 256 MiB memory limit,
// in an error that names the file and the limit. Before, each read until
// memory ran out (24 GB RSS for scan -iL /dev/zero).
func TestHostileEndlessInputs(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatal("prlimit (util-linux) is needed to limit reach's memory")
	}
	bin := buildReach(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("a-token-of-some-length-0123456789\n"), 0o600)
	hubYAML := filepath.Join(dir, "hub.yaml")
	os.WriteFile(hubYAML, []byte("endpoints:\n  - {name: a, target: 127.0.0.1:1}\n"+
		"agents:\n  token_file: /dev/zero\n  hosts: [{name: a, addr: 127.0.0.1}]\n"), 0o600)
	plainYAML := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plainYAML, []byte("endpoints:\n  - {name: a, target: 127.0.0.1:1}\n"), 0o600)

	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"scan -iL /dev/zero", "", []string{"scan", "-iL", "/dev/zero", "-p", "80"}, ExitUsage,
			"-iL /dev/zero: endpoint: target list past its limits: line 1 is longer than 4096 bytes"},
		{"scan -iL - </dev/zero", "/dev/zero", []string{"scan", "-iL", "-", "-p", "80"}, ExitUsage,
			"-iL standard input: endpoint: target list past its limits: line 1 is longer than 4096 bytes"},
		{"watch -c /dev/zero", "", []string{"watch", "-c", "/dev/zero", "--check-config"}, ExitFail,
			"config file /dev/zero holds more than 4 MiB; the limit for a config file is 4 MiB"},
		{"agents.token_file /dev/zero", "", []string{"watch", "-c", hubYAML, "--check-config"}, ExitFail,
			"agents.token_file: agent: token: token file /dev/zero holds more than 4 KiB"},
		{"agent --token-file /dev/zero", "", []string{"agent", "--hub", "http://127.0.0.1:1", "--token-file", "/dev/zero"},
			ExitUsage, "--token-file: agent: token: token file /dev/zero holds more than 4 KiB"},
		{"check --token-file /dev/zero", "", []string{"check", "127.0.0.1:1", "--agent", "http://127.0.0.1:1", "--token-file", "/dev/zero"},
			ExitUsage, "--token-file: agent: token: token file /dev/zero holds more than 4 KiB"},
		{"agent --tls-cert /dev/zero", "", []string{"agent", "--hub", "http://127.0.0.1:1", "--token-file", token,
			"--tls-cert", "/dev/zero", "--tls-key", "/dev/zero"}, ExitUsage,
			"certificate file /dev/zero holds more than 1 MiB"},
		{"watch --agent-ca /dev/zero", "", []string{"watch", "-c", plainYAML, "--check-config", "--agent-ca", "/dev/zero"},
			ExitUsage, "CA file /dev/zero holds more than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, errs, rss := runLimited(t, bin, tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errs, tt.code, tt.want)
			}
			t.Logf("exit %d in %v, peak RSS %d KiB", code, time.Since(start).Round(time.Millisecond), rss)
		})
	}
}
