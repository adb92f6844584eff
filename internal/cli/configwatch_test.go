package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
)

// configMap lays out dir as the kubelet does a ConfigMap volume: the file
// is a symlink through ..data to a timestamped directory, and an update
// writes a new directory and swaps ..data to it with a rename.
type configMap struct {
	t   *testing.T
	dir string
	n   int
}

func newConfigMap(t *testing.T, body string) *configMap {
	c := &configMap{t: t, dir: t.TempDir()}
	c.update(body)
	if err := os.Symlink(filepath.Join("..data", "reach.yaml"), filepath.Join(c.dir, "reach.yaml")); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *configMap) path() string { return filepath.Join(c.dir, "reach.yaml") }

func (c *configMap) update(body string) {
	c.n++
	ts := "..2026_12_05_00_00_0" + string(rune('0'+c.n))
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, ts, "reach.yaml"), []byte(body), 0o644); err != nil {
		c.t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
}

// pollFile sees a ConfigMap's update, with the same size and mtime as the
// old file, once; nothing when nothing changed.
func TestPollFileSeesConfigMapSwap(t *testing.T) {
	cm := newConfigMap(t, "a: 1\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes := make(chan struct{}, 10)
	go pollFile(ctx, cm.path(), 5*time.Millisecond, func() { changes <- struct{}{} })
	select {
	case <-changes:
		t.Fatal("a change reported while nothing changed")
	case <-time.After(50 * time.Millisecond):
	}
	old, _ := os.Stat(cm.path())
	cm.update("a: 2\n") // same size
	if err := os.Chtimes(cm.path(), old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("the ConfigMap's update was not seen")
	}
}

// reach watch reloads its ConfigMap when it is updated, without SIGHUP.
func TestWatchReloadsConfigMapUpdate(t *testing.T) {
	a, b := testnet.Serve(t, testnet.HangUp), testnet.Serve(t, testnet.HangUp)
	cm := newConfigMap(t, "endpoints:\n  - {name: a, target: '"+a.String()+"', interval: 1s}\n")
	w := startWatch(t, cm.path(), "--no-doctor", "--config-poll", "100ms")
	testnet.Eventually(t, 30*time.Second, "a up", func() bool { return w.endpoints(t)["a"].State == monitor.StateUp })
	cm.update("endpoints:\n  - {name: a, target: '" + a.String() + "', interval: 1s}\n" +
		"  - {name: b, target: '" + b.String() + "', interval: 1s}\n")
	testnet.Eventually(t, 30*time.Second, "b up after the ConfigMap update", func() bool {
		return w.endpoints(t)["b"].State == monitor.StateUp
	})
}
