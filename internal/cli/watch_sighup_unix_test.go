//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/web"
)

// SIGHUP reloads the configuration; Windows has no SIGHUP to send.
func TestWatchReloadsOnSIGHUP(t *testing.T) {
	a, b := testnet.Serve(t, testnet.HangUp), testnet.Serve(t, testnet.HangUp)
	config := filepath.Join(t.TempDir(), "reach.yaml")
	writeConfig(t, config, "endpoints:\n  - {name: a, target: '"+a.String()+"', interval: 1s}\n")
	w := startWatch(t, config, "--no-doctor", "--config-poll", "0") // SIGHUP alone
	var before web.EndpointView
	testnet.Eventually(t, 30*time.Second, "a up", func() bool { before = w.endpoints(t)["a"]; return before.State == monitor.StateUp })

	// A bad file is refused and the running configuration stays.
	writeConfig(t, config, "endpoints:\n  - {name: a, target: 'nope:99999'}\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testnet.Eventually(t, 30*time.Second, "the reload to be refused", func() bool { return strings.Contains(w.errs.String(), "reload refused") })

	writeConfig(t, config, "endpoints:\n  - {name: a, target: '"+a.String()+"', interval: 1s}\n  - {name: b, target: '"+b.String()+"', interval: 1s}\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testnet.Eventually(t, 30*time.Second, "b up after the reload", func() bool { return w.endpoints(t)["b"].State == monitor.StateUp })
	after := w.endpoints(t)["a"]
	if after.State != monitor.StateUp || !after.Since.Equal(before.Since) {
		t.Errorf("a lost its state across the reload: before %+v, after %+v", before.Status, after.Status)
	}
	if !strings.Contains(w.errs.String(), "configuration reloaded") {
		t.Errorf("no reload log:\n%s", w.errs.String())
	}
}
