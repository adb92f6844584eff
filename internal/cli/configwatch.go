package cli

import (
	"context"
	"os"
	"time"
)

// fileStamp is what tells one version of a file from the next without
// reading it: a Kubernetes ConfigMap update swaps the ..data symlink to a
// new directory, so the path then names another file (another inode), even
// when size and mtime happen to match.
type fileStamp struct {
	mod      time.Time
	size     int64
	dev, ino uint64
	err      bool // the file could not be read: a new file is a change
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path) // follows symlinks, ..data included
	if err != nil {
		return fileStamp{err: true}
	}
	s := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	s.dev, s.ino = fileID(fi)
	return s
}

// pollFile checks path every interval until ctx ends and calls changed
// each time it names another file or the file changed (a missing file is
// not a change; its return is). Polling, not inotify: a ConfigMap volume's
// symlink swap, an editor's rename and a network file system all show in a
// stat, and one stat every few seconds costs nothing.
func pollFile(ctx context.Context, path string, interval time.Duration, changed func()) {
	last := stampOf(path)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stampOf(path)
		if now == last || now.err {
			continue
		}
		last = now
		changed()
	}
}
