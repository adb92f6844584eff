package sys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenNetnsErrors(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want error
	}{
		{"/run/netns/reach-no-such-namespace", fs.ErrNotExist},
		{"/proc/2147483647/ns/net", fs.ErrNotExist},
		{plain, ErrNotNetns},
		{"/proc/self/ns/uts", ErrNotNetns},
	}
	for _, tt := range tests {
		ns, err := OpenNetns(tt.path)
		var nerr *NetnsError
		if !errors.Is(err, tt.want) || !errors.As(err, &nerr) || nerr.Path != tt.path {
			t.Errorf("OpenNetns(%s) = %v, %v; want a *NetnsError wrapping %v", tt.path, ns, err, tt.want)
		}
		if _, err := NetnsInode(tt.path); !errors.Is(err, tt.want) {
			t.Errorf("NetnsInode(%s) = %v, want %v", tt.path, err, tt.want)
		}
	}
	self, err := OpenNetns("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if ino, err := NetnsInode("/proc/self/ns/net"); err != nil || ino != self.Inode() {
		t.Errorf("NetnsInode(/proc/self/ns/net) = %d, %v; open says %d", ino, err, self.Inode())
	}
}
