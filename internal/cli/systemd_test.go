package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reach-watch.service starts reach watch with flags it knows, on the paths
// the .deb installs: the config in /etc/reach, the history in the state
// directory the unit asks for.
func TestSystemdWatchUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "reach-watch.service"))
	if err != nil {
		t.Fatal(err)
	}
	var exec []string
	for line := range strings.Lines(string(b)) {
		if l, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart="); ok {
			exec = strings.Fields(l)
		}
	}
	if len(exec) < 2 || exec[0] != "/usr/bin/reach" || exec[1] != "watch" {
		t.Fatalf("ExecStart runs %q, want /usr/bin/reach watch", exec)
	}
	cmd := newWatchCmd(&Env{Stdio: Stdio{Out: io.Discard, Err: io.Discard}})
	if err := cmd.ParseFlags(exec[2:]); err != nil {
		t.Fatalf("reach watch rejects %q: %v", exec[2:], err)
	}
	for flag, want := range map[string]string{"config": "/etc/reach/reach.yaml", "store": "/var/lib/reach/reach.db"} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s %s, want %s", flag, got, want)
		}
	}
	if !strings.Contains(string(b), "\nStateDirectory=reach\n") {
		t.Error("the unit has no StateDirectory=reach: under DynamicUser and ProtectSystem=strict /var/lib/reach is not writable")
	}
}
