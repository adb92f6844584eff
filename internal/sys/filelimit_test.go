//go:build unix

package sys_test

import (
	"os"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/sys"
)

func TestFileLimit(t *testing.T) {
	limit, before, err := sys.FileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if limit != uint64(lim.Cur) {
		t.Errorf("FileLimit = %d, getrlimit says %d", limit, lim.Cur)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, after, err := sys.FileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if before < 3 || after != before+1 {
		t.Errorf("open descriptors %d, then %d after opening one more", before, after)
	}
}
