package doctor

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/sockets"
)

func TestVantageNames(t *testing.T) {
	docker := &sockets.Container{ID: "3f2a1b4c5d6e7f8091a2b3c4d5e6f708", Runtime: "docker"}
	for _, tt := range []struct {
		ns            sockets.Namespace
		short, string string
	}{
		{sockets.Namespace{Inode: 7, Name: "blue", Path: "/run/netns/blue"},
			"network namespace blue", "network namespace blue (net:[7], /run/netns/blue)"},
		{sockets.Namespace{Inode: 7, PID: 42, Path: "/proc/42/ns/net", Container: docker},
			"the network namespace of pid 42 (container docker 3f2a1b4c5d6e)",
			"the network namespace of pid 42 (net:[7], /proc/42/ns/net, container docker 3f2a1b4c5d6e)"},
		{sockets.Namespace{Inode: 7, Path: "/var/run/docker/netns/x"},
			"network namespace net:[7]", "network namespace net:[7] (net:[7], /var/run/docker/netns/x)"},
	} {
		v := &Vantage{Namespace: tt.ns}
		if v.Short() != tt.short || v.String() != tt.string {
			t.Errorf("%+v:\n got %q, %q\nwant %q, %q", tt.ns, v.Short(), v.String(), tt.short, tt.string)
		}
	}
}

// Each way of failing to enter says so, and keeps its cause for errors.Is.
func TestVantageErrorSays(t *testing.T) {
	for _, tt := range []struct {
		e    VantageError
		want string
	}{
		{VantageError{Namespace: "blue", Op: "enter", Err: &sys.NetnsError{Op: "enter", Path: "/run/netns/blue", Err: syscall.EPERM}},
			"doctor: enter network namespace blue: entering a network namespace needs CAP_SYS_ADMIN: run as root or use ip netns exec"},
		{VantageError{Namespace: "pid 9", Op: "find", Err: fs.ErrNotExist}, "doctor: find network namespace pid 9: no such process"},
		{VantageError{Namespace: "/x/y", Op: "find", Err: fs.ErrNotExist}, "doctor: find network namespace /x/y: no such file"},
		{VantageError{Namespace: "/etc/hostname", Op: "find", Err: sys.ErrNotNetns},
			"doctor: find network namespace /etc/hostname: not a network namespace file (/run/netns/NAME and /proc/PID/ns/net are)"},
		{VantageError{Namespace: "blue", Op: "run in", Err: errors.New("exit status 2"), Stderr: "reach: bad flag"},
			"doctor: run in network namespace blue: exit status 2; it said: reach: bad flag"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
		if !errors.Is(&tt.e, tt.e.Err) {
			t.Errorf("%v does not unwrap to %v", &tt.e, tt.e.Err)
		}
	}
}
