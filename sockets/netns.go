package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/reach-tools/reach/internal/sys"
)

// Namespace is one network namespace of this host.
type Namespace struct {
	// Inode identifies the namespace (ls -L -i /proc/PID/ns/net); two
	// processes share a network when their inodes are equal.
	Inode uint64 `json:"inode"`
	// Name is its name in /run/netns (ip netns), when one is bound there.
	Name string `json:"name,omitempty"`
	// PID is a process in the namespace: the one whose /proc/PID/ns/net
	// was entered, or when entered by name the first one found there; 0
	// when no process runs there.
	PID int `json:"pid,omitempty"`
	// Path is the file that was entered: /run/netns/NAME or
	// /proc/PID/ns/net; empty for reach's own namespace, listed in place.
	Path string `json:"path,omitempty"`
	// Self marks reach's own namespace; Init the namespace of process 1,
	// the host's (unless reach runs in a container's PID namespace).
	Self bool `json:"self,omitempty"`
	Init bool `json:"init,omitempty"`
	// Processes is how many processes run in it, as far as they were
	// visible; 0 for a namespace kept alive only by its name.
	Processes int `json:"processes"`
	// Container is the container whose namespace this is, when the
	// cgroup of a process in it names one (the first found; in a
	// Kubernetes pod its containers share one namespace).
	Container *Container `json:"container,omitempty"`
	// Source is how its sockets were read: "netlink" or "procfs".
	Source string `json:"source,omitempty"`
}

// String names the namespace for people: its name, "host" for process 1's,
// "self" for reach's own (when process 1's is hidden or another), "pid N",
// or "net:[INODE]".
func (n Namespace) String() string {
	switch {
	case n.Name != "":
		return n.Name
	case n.Init:
		return "host"
	case n.Self:
		return "self"
	case n.PID != 0:
		return "pid " + strconv.Itoa(n.PID)
	default:
		return "net:[" + strconv.FormatUint(n.Inode, 10) + "]"
	}
}

// NotSeenReason says why a namespace could not be listed.
type NotSeenReason string

const (
	// NotSeenPermission: reach may not read the namespace of another
	// user's process, or may not enter a namespace (that needs root:
	// CAP_SYS_ADMIN).
	NotSeenPermission NotSeenReason = "permission"
	// NotSeenVanished: the namespace went away while it was being listed
	// (its processes exited, its name was deleted).
	NotSeenVanished NotSeenReason = "vanished"
	// NotSeenError: anything else; Err says what.
	NotSeenError NotSeenReason = "error"
)

// NotSeen is a namespace, or a set of processes' namespaces, that could not be
// listed.
type NotSeen struct {
	// Namespace is what is known of it: a name, a pid, a path; Inode is 0
	// when even that could not be read.
	Namespace Namespace `json:"namespace"`
	// Processes counts the processes whose namespace could not be read
	// (/proc/PID/ns/net of other users' processes), when that is the case.
	Processes int           `json:"processes,omitempty"`
	Reason    NotSeenReason `json:"reason"`
	// Err is the error met; errors.Is(Err, fs.ErrPermission) and the
	// like work on it. Error is its text, for JSON.
	Err   error  `json:"-"`
	Error string `json:"error"`
}

// notSeenFor classifies err into a NotSeen for ns.
func notSeenFor(ns Namespace, err error) NotSeen {
	r := NotSeenError
	switch {
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EPERM):
		r = NotSeenPermission
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH):
		r = NotSeenVanished
	}
	return NotSeen{Namespace: ns, Reason: r, Err: err, Error: err.Error()}
}

// notSeenWarnings says in words what could not be seen.
func notSeenWarnings(ns []NotSeen, euid int) []string {
	var w []string
	var denied, vanished []string
	deniedProcs := 0
	for _, n := range ns {
		switch {
		case n.Reason == NotSeenPermission && n.Processes > 0:
			deniedProcs += n.Processes
		case n.Reason == NotSeenPermission:
			denied = append(denied, n.Namespace.String())
		case n.Reason == NotSeenVanished:
			vanished = append(vanished, n.Namespace.String())
		default:
			w = append(w, fmt.Sprintf("network namespace %s not listed: %v", n.Namespace, n.Err))
		}
	}
	fix := "run as root (sudo) to list them"
	if euid == 0 {
		fix = "root is refused too: another user namespace or a security module (SELinux, AppArmor) " +
			"forbids it"
	}
	if deniedProcs > 0 {
		w = append(w, fmt.Sprintf("the network namespaces of %s are hidden from uid %d; %s",
			plural(deniedProcs, "process"), euid, fix))
	}
	if len(denied) > 0 {
		w = append(w, fmt.Sprintf("%s not entered (%s): entering a namespace needs CAP_SYS_ADMIN; %s",
			plural(len(denied), "network namespace"), strings.Join(denied, ", "), fix))
	}
	if len(vanished) > 0 {
		w = append(w, fmt.Sprintf("%s went away while being listed (%s): "+
			"their processes exited or their names were deleted",
			plural(len(vanished), "network namespace"), strings.Join(vanished, ", ")))
	}
	return w
}

// NamespaceRef names one network namespace: by Name (as ip netns names it,
// /run/netns/NAME), by Path (a namespace file: /proc/PID/ns/net, a bind
// mount such as Docker's /run/docker/netns/ID), or by PID (the namespace of
// that process). Exactly one is set.
type NamespaceRef struct {
	Name string
	Path string
	PID  int
}

// ErrBadNamespaceRef means a NamespaceRef does not name one namespace.
var ErrBadNamespaceRef = errors.New("sockets: a namespace is named by one of a name, a path or a pid")

// ParseNamespaceRef reads what a user typed for --netns: a path when it
// contains a slash, else a name in /run/netns.
func ParseNamespaceRef(s string) (NamespaceRef, error) {
	if strings.Contains(s, "/") {
		return NamespaceRef{Path: s}, nil
	}
	r := NamespaceRef{Name: s}
	_, err := r.file()
	return r, err
}

// String is what the user gave: the name, the path, or "pid N".
func (r NamespaceRef) String() string {
	switch {
	case r.Name != "":
		return r.Name
	case r.Path != "":
		return r.Path
	default:
		return "pid " + strconv.Itoa(r.PID)
	}
}

// file returns the namespace file to open.
func (r NamespaceRef) file() (string, error) {
	set := 0
	for _, b := range []bool{r.Name != "", r.Path != "", r.PID != 0} {
		if b {
			set++
		}
	}
	switch {
	case set != 1:
		return "", ErrBadNamespaceRef
	case r.Name != "":
		if r.Name == "." || r.Name == ".." || strings.ContainsAny(r.Name, "/\x00") {
			return "", fmt.Errorf("%w: %q is not a namespace name (ip netns list shows them)",
				ErrBadNamespaceRef, r.Name)
		}
		return netnsDir + "/" + r.Name, nil
	case r.PID < 0:
		return "", fmt.Errorf("%w: pid %d", ErrBadNamespaceRef, r.PID)
	case r.PID != 0:
		return "/proc/" + strconv.Itoa(r.PID) + "/ns/net", nil
	}
	return r.Path, nil
}

// netnsDir is where ip netns binds namespace names.
const netnsDir = "/run/netns"

// NamespaceError is an error entering the namespace a NamespaceRef names. It
// unwraps to the system error: errors.Is(err, fs.ErrNotExist) when there is
// no such name or process, fs.ErrPermission when entering is not allowed.
type NamespaceError struct {
	Ref NamespaceRef
	Err error
}

func (e *NamespaceError) Error() string {
	what := "network namespace " + strconv.Quote(e.Ref.String())
	if e.Ref.PID != 0 {
		what = "the network namespace of process " + strconv.Itoa(e.Ref.PID)
	}
	var hint string
	switch {
	case errors.Is(e.Err, fs.ErrNotExist) && e.Ref.PID != 0:
		hint = ": no such process"
	case errors.Is(e.Err, fs.ErrNotExist) && e.Ref.Name != "":
		hint = ": no such name in " + netnsDir + " (ip netns list shows the names; " +
			"a container's namespace is reached with --pid and one of its processes)"
	case errors.Is(e.Err, fs.ErrNotExist):
		hint = ": no such file"
	case errors.Is(e.Err, sys.ErrNotNetns):
		hint = ": " + e.Ref.String() +
			" is not a network namespace file (/run/netns/NAME or /proc/PID/ns/net is)"
	case errors.Is(e.Err, fs.ErrPermission) || errors.Is(e.Err, syscall.EPERM):
		hint = ": permission denied; entering a network namespace needs root (CAP_SYS_ADMIN), run with sudo"
	default:
		hint = ": " + e.Err.Error()
	}
	return "sockets: " + what + hint
}

func (e *NamespaceError) Unwrap() error { return e.Err }
