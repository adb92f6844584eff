package netlab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// supported reports what the lab needs that this machine lacks.
func supported() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root; run the tests as root (CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command is missing; install iproute2 (scripts/test does)")
	}
	return nil
}

// enter switches the calling (locked) thread into the namespace at path and
// returns the function that switches it back.
func enter(path string) (leave func() error, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(orig)
		return nil, err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		unix.Close(orig)
		return nil, err
	}
	return func() error {
		defer unix.Close(orig)
		return unix.Setns(orig, unix.CLONE_NEWNET)
	}, nil
}

// dieWithParent kills cmd when the test binary dies, so a killed test leaves
// no servers behind in its namespaces.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// lockDir holds one lock file per live lab, flocked by the test binary that
// owns the lab. The kernel drops the lock when the binary dies, however it
// dies, which is how sweep tells abandoned labs from live ones.
const lockDir = "/run/reach-netlab"

// hold marks lab id as alive until release is called.
func hold(id string) (release func(), err error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, err
	}
	// Locked under a name sweep ignores, then renamed: sweep never sees it unlocked.
	tmp := filepath.Join(lockDir, ".new-"+id)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(lockDir, id+".lock")
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// sweep deletes the namespaces of labs whose test binary died without cleaning
// up. Failures are ignored: sweeping is a courtesy to the next run.
func sweep() {
	locks, _ := filepath.Glob(filepath.Join(lockDir, "*.lock"))
	for _, path := range locks {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close() // alive (EWOULDBLOCK) or unlockable: leave it
			continue
		}
		prefix := "rl-" + strings.TrimSuffix(filepath.Base(path), ".lock") + "-"
		entries, _ := os.ReadDir(filepath.Dir(nsPath("x")))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				_ = killInside(e.Name())
				_, _ = run(nil, "ip", "netns", "del", e.Name())
			}
		}
		os.Remove(path)
		f.Close()
	}
}
