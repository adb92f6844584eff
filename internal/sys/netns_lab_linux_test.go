package sys

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"golang.org/x/sys/unix"
)

// threadNetns is the inode of the calling thread's network namespace.
func threadNetns(t testing.TB) uint64 {
	t.Helper()
	ino, err := NetnsInode("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func labNetns(t *testing.T) (*netlab.Host, *Netns) {
	t.Helper()
	netlab.Require(t)
	h := netlab.New(t).Host("ns")
	ns, err := OpenNetns("/run/netns/" + h.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return h, ns
}

// TestNetnsDo runs code in a lab namespace: it sees that namespace (its
// thread, its /proc/thread-self/net), its listener is not in ours, and the
// caller's thread never moves.
func TestNetnsDo(t *testing.T) {
	h, ns := labNetns(t)
	byName, err := NetnsInode("/run/netns/" + h.Name())
	if err != nil {
		t.Fatal(err)
	}
	own := threadNetns(t)
	if ns.Inode() != byName || ns.Inode() == own {
		t.Fatalf("opened inode %d, by name %d, ours %d", ns.Inode(), byName, own)
	}
	var inside uint64
	var ln net.Listener
	err = ns.Do(func() (err error) {
		inside = threadNetns(t)
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if inside != ns.Inode() {
		t.Errorf("inside Do the thread is in %d, want %d", inside, ns.Inode())
	}
	if got := threadNetns(t); got != own {
		t.Errorf("after Do the caller is in %d, want %d", got, own)
	}
	// The listener is in the lab: connecting from here is refused.
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second); err == nil {
		c.Close()
		t.Errorf("dialled %v from the root namespace; the listener should be in the lab", ln.Addr())
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %v from outside: %v, want refused", ln.Addr(), err)
	}
	want := errors.New("fn's own error")
	if err := InNetns("/run/netns/"+h.Name(), func() error { return want }); err != want {
		t.Errorf("InNetns returned %v, want fn's error", err)
	}
}

func TestNetnsDoPanics(t *testing.T) {
	_, ns := labNetns(t)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		ns.Do(func() error { panic("boom") })
		t.Error("Do returned after a panic")
	}()
	if err := ns.Do(func() error { runtime.Goexit(); return nil }); !errors.Is(err, ErrNetnsGoexit) {
		t.Errorf("Goexit: err %v, want ErrNetnsGoexit", err)
	}
}

// TestNetnsRestoreFails makes the switch back fail: Do says so, and the
// thread that is stuck in the lab namespace is gone rather than reused (or,
// when it is the main thread, which Go cannot end, parked for good).
func TestNetnsRestoreFails(t *testing.T) {
	_, ns := labNetns(t)
	restoreNetns = func(int) error { return unix.EPERM }
	defer func() { restoreNetns = func(fd int) error { return unix.Setns(fd, unix.CLONE_NEWNET) } }()
	var tid int
	err := ns.Do(func() error { tid = unix.Gettid(); return nil })
	if !errors.Is(err, ErrNetnsRestore) || !errors.Is(err, unix.EPERM) {
		t.Fatalf("err %v, want ErrNetnsRestore wrapping EPERM", err)
	}
	if tid == os.Getpid() {
		// Go wedges the main thread instead of ending it: no goroutine
		// may run on it again.
		for range 50 {
			ch := make(chan int)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				ch <- unix.Gettid()
			}()
			if got := <-ch; got == tid {
				t.Fatalf("a goroutine ran on thread %d, left in namespace %d", tid, ns.Inode())
			}
		}
		return
	}
	task := filepath.Join("/proc/self/task", strconv.Itoa(tid))
	what := fmt.Sprintf("thread %d, left in namespace %d, ends", tid, ns.Inode())
	testnet.Eventually(t, 5*time.Second, what, func() bool {
		_, err := os.Stat(task)
		return errors.Is(err, fs.ErrNotExist)
	})
}
