package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/reach-tools/reach/internal/bounded"
	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/sockets"
)

// maxResolverFile bounds a namespace's resolv.conf or hosts file as read to
// be bound over /etc's.
const maxResolverFile = 16 << 20

// VantageEnv is the environment variable through which RunFrom tells the
// process it starts which namespace it runs in; ChildVantage reads it.
const VantageEnv = "REACH_VANTAGE"

// ErrNotInNamespace means a process RunFrom started does not run in the
// network namespace it was started for.
var ErrNotInNamespace = errors.New("doctor: not in the network namespace it was started for")

// Vantage is where a ladder ran when that is not the network namespace of
// the program that asked: another namespace of this host (a container's, an
// ip netns one), entered by RunFrom. Reports name it (Report.Vantage, the
// verdict, each finding's evidence), so "works from the host, not from my
// container" is visible in the report itself.
type Vantage struct {
	// Namespace is the network namespace: its inode, ip netns name, a
	// process in it, the file entered (Path), and its container.
	Namespace sockets.Namespace `json:"namespace"`
	// DNS says which resolver files the lookups used, and why. Entering a
	// network namespace does not enter a mount namespace, and a container
	// keeps its /etc/resolv.conf and /etc/hosts in its own: RunFrom binds
	// the namespace's own files over /etc's in a private mount namespace
	// of the child when it finds them (ResolvConf, Hosts), and otherwise
	// lookups use this host's files.
	DNS string `json:"dns"`
	// ResolvConf and Hosts are the namespace's own resolver files as this
	// host sees them: /etc/netns/NAME/resolv.conf for an ip netns name
	// (where ip netns exec finds them), or the file under /proc/PID/root
	// of a process in it that has a mount namespace of its own (a
	// container's) where they are other files than this host's. Empty
	// when it has none.
	ResolvConf string `json:"resolv_conf,omitempty"`
	Hosts      string `json:"hosts,omitempty"`
}

// Short names the namespace for a verdict: "network namespace blue",
// "the network namespace of pid 4242 (container docker 3f2a1b4c5d6e)".
func (v *Vantage) Short() string {
	ns := v.Namespace
	s := "network namespace " + ns.String()
	if ns.Name == "" && ns.PID != 0 {
		s = "the network namespace of pid " + strconv.Itoa(ns.PID)
	}
	if ns.Container != nil {
		s += " (container " + ns.Container.Short() + ")"
	}
	return s
}

// String is Short with the namespace's inode and the file entered.
func (v *Vantage) String() string {
	ns := v.Namespace
	s := "network namespace " + ns.String()
	if ns.Name == "" && ns.PID != 0 {
		s = "the network namespace of pid " + strconv.Itoa(ns.PID)
	}
	extra := []string{"net:[" + strconv.FormatUint(ns.Inode, 10) + "]"}
	if ns.Path != "" {
		extra = append(extra, ns.Path)
	}
	if ns.Container != nil {
		extra = append(extra, "container "+ns.Container.Short())
	}
	return s + " (" + strings.Join(extra, ", ") + ")"
}

// VantageError is an error running the ladder from another network
// namespace: which one, at which step, and why. It unwraps to the cause:
// errors.Is(err, fs.ErrNotExist) for no such name, process or file,
// fs.ErrPermission or syscall.EPERM without the right to enter,
// ErrNotInNamespace.
type VantageError struct {
	Namespace string // as it was named: "blue", "pid 4242", a path
	Op        string // "find", "enter", "run"
	Err       error
	// Stderr is the end of what the ladder's process wrote on stderr,
	// when it failed.
	Stderr string
}

func (e *VantageError) Error() string {
	var why string
	switch {
	case errors.Is(e.Err, fs.ErrPermission) || errors.Is(e.Err, syscall.EPERM):
		why = "entering a network namespace needs CAP_SYS_ADMIN: run as root or use ip netns exec"
	case errors.Is(e.Err, sys.ErrNotNetns):
		why = "not a network namespace file (/run/netns/NAME and /proc/PID/ns/net are)"
	case errors.Is(e.Err, fs.ErrNotExist) && strings.HasPrefix(e.Namespace, "pid "):
		why = "no such process"
	case errors.Is(e.Err, fs.ErrNotExist) && !strings.Contains(e.Namespace, "/"):
		why = "no such name in /run/netns (ip netns list shows the names; a container's namespace is reached through one of its processes, docker inspect -f '{{.State.Pid}}' NAME)"
	case errors.Is(e.Err, fs.ErrNotExist):
		why = "no such file"
	default:
		why = e.Err.Error()
	}
	s := fmt.Sprintf("doctor: %s network namespace %s: %s", e.Op, e.Namespace, why)
	if e.Stderr != "" {
		s += "; it said: " + e.Stderr
	}
	return s
}

func (e *VantageError) Unwrap() error { return e.Err }

// vantageWire is what RunFrom passes to its child in VantageEnv.
type vantageWire struct {
	Vantage
	// ParentMounts is the mount namespace of the process that called
	// RunFrom: the child binds files only in another one, its private copy.
	ParentMounts uint64 `json:"parent_mounts"`
}

// ChildVantage prepares a process that RunFrom started: it reads the
// vantage RunFrom passed in VantageEnv (and removes it from the
// environment), checks that the process runs in that network namespace,
// and binds the namespace's own resolv.conf and hosts over /etc's, in the
// private mount namespace RunFrom gave the process, before any lookup
// reads them. Set the result as Options.Vantage. It returns nil, nil when
// the process was not started by RunFrom.
func ChildVantage() (*Vantage, error) {
	raw, ok := os.LookupEnv(VantageEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(VantageEnv)
	var w vantageWire
	if err := json.Unmarshal([]byte(raw), &w); err != nil {
		return nil, fmt.Errorf("doctor: reading %s: %w", VantageEnv, err)
	}
	v := w.Vantage
	name := v.Namespace.String()
	ino, err := sys.NetnsInode("/proc/self/ns/net")
	if err != nil {
		return nil, &VantageError{Namespace: name, Op: "run in", Err: err}
	}
	if ino != v.Namespace.Inode {
		return nil, &VantageError{Namespace: name, Op: "run in", Err: fmt.Errorf("%w: this process runs in net:[%d], not net:[%d]", ErrNotInNamespace, ino, v.Namespace.Inode)}
	}
	if v.ResolvConf != "" || v.Hosts != "" {
		v.DNS = bindResolverFiles(&v, w.ParentMounts)
	}
	return &v, nil
}

// bindResolverFiles binds copies of v's resolver files over /etc's and
// says what lookups use.
func bindResolverFiles(v *Vantage, parentMounts uint64) string {
	own, err := sys.MountNamespaceInode("/proc/self/ns/mnt")
	if err != nil || own == parentMounts {
		return fmt.Sprintf("lookups used this host's /etc/resolv.conf and /etc/hosts, not the namespace's own (%s): this process has no private mount namespace to bind them in", strings.Join(nonEmpty(v.ResolvConf, v.Hosts), ", "))
	}
	var bound, failed []string
	for _, f := range []struct{ src, dst string }{{v.ResolvConf, "/etc/resolv.conf"}, {v.Hosts, "/etc/hosts"}} {
		if f.src == "" {
			continue
		}
		if err := bindCopy(f.src, f.dst); err != nil {
			failed = append(failed, err.Error())
			continue
		}
		bound = append(bound, f.src)
	}
	s := "lookups used this host's /etc/resolv.conf and /etc/hosts"
	if len(bound) > 0 {
		s = "lookups used the namespace's own " + strings.Join(bound, " and ") + " (bound over /etc's in a private mount namespace, as ip netns exec does)"
	}
	if len(failed) > 0 {
		s += "; could not bind: " + strings.Join(failed, "; ")
	}
	return s
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// bindCopy binds a copy of src over dst. A copy, not src itself: a
// container's file lives in its mount namespace, and the kernel binds only
// files of the caller's own (EINVAL). The copy's name is removed at once;
// the bind keeps the file.
func bindCopy(src, dst string) error {
	// A container's own file: bounded, since the container decides what
	// it is (a link to /dev/zero would otherwise fill our memory).
	b, err := bounded.ReadFile(src, "resolver file", maxResolverFile)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "reach-vantage-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return sys.BindFile(f.Name(), dst)
}

// resolverFiles finds the namespace's own resolver files and says, when it
// has none, what lookups will use instead.
func resolverFiles(ns sockets.Namespace) (resolv, hosts, dns string) {
	exists := func(p string) string {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	if ns.Name != "" {
		dir := "/etc/netns/" + ns.Name + "/"
		if resolv, hosts = exists(dir+"resolv.conf"), exists(dir+"hosts"); resolv != "" || hosts != "" {
			return resolv, hosts, ""
		}
	}
	if ns.PID == 0 {
		return "", "", "lookups used this host's /etc/resolv.conf and /etc/hosts: no process runs in the namespace to read its own from" + netnsDirNote(ns)
	}
	self, err1 := sys.MountNamespaceInode("/proc/self/ns/mnt")
	theirs, err2 := sys.MountNamespaceInode("/proc/" + strconv.Itoa(ns.PID) + "/ns/mnt")
	if err1 == nil && err2 == nil && self == theirs {
		return "", "", fmt.Sprintf("lookups used this host's /etc/resolv.conf and /etc/hosts, which are also those of pid %d (it shares this host's mount namespace)%s", ns.PID, netnsDirNote(ns))
	}
	root := "/proc/" + strconv.Itoa(ns.PID) + "/root/etc/"
	if resolv, hosts = exists(root+"resolv.conf"), exists(root+"hosts"); resolv == "" && hosts == "" {
		return "", "", fmt.Sprintf("lookups used this host's /etc/resolv.conf and /etc/hosts: those of pid %d could not be read under %s", ns.PID, root)
	}
	// A mount namespace of its own is not a root of its own: ip netns exec
	// and unshare -m give one to processes that still see this host's
	// /etc. Those files are not the namespace's own.
	resolv, hosts = notSame(resolv, "/etc/resolv.conf"), notSame(hosts, "/etc/hosts")
	if resolv == "" && hosts == "" {
		return "", "", fmt.Sprintf("lookups used this host's /etc/resolv.conf and /etc/hosts, which are also those of pid %d (it sees this host's files)%s", ns.PID, netnsDirNote(ns))
	}
	return resolv, hosts, ""
}

// notSame is p, or "" when p is the same file as host's.
func notSame(p, host string) string {
	if p == "" {
		return ""
	}
	a, err1 := os.Stat(p)
	b, err2 := os.Stat(host)
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		return ""
	}
	return p
}

func netnsDirNote(ns sockets.Namespace) string {
	if ns.Name == "" {
		return ""
	}
	return "; nor is there an /etc/netns/" + ns.Name + "/resolv.conf, where ip netns exec looks"
}
