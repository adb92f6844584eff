package sys

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNotNetns means a file opened as a network namespace is another kind of
// file (or another kind of namespace).
var ErrNotNetns = errors.New("sys: not a network namespace file")

// ErrNetnsRestore means a thread could not switch back to its own network
// namespace after running a function in another one. The thread was thrown
// away (its goroutine exited still locked to it), so no other goroutine ran
// in the wrong namespace; the function's own result is joined to this error.
var ErrNetnsRestore = errors.New("sys: could not return to the original network namespace; " +
	"the thread was discarded")

// ErrNetnsGoexit means the function given to Netns.Do called runtime.Goexit
// (t.Fatal, for example); the namespace was left and the function's goroutine
// ended, but it returned no result.
var ErrNetnsGoexit = errors.New("sys: function run in a network namespace called runtime.Goexit")

// NetnsError is an error opening or entering a network namespace: what was
// done, on which file, and the errno (errors.Is works with fs.ErrNotExist,
// fs.ErrPermission, and syscall.Errno values).
type NetnsError struct {
	Op   string // "open", "enter", "inspect"
	Path string
	Err  error
}

func (e *NetnsError) Error() string {
	return fmt.Sprintf("sys: %s network namespace %s: %v", e.Op, e.Path, e.Err)
}

func (e *NetnsError) Unwrap() error { return e.Err }

// ParseNamespaceLink returns the inode in the target of a /proc/PID/ns/*
// link, "net:[4026531840]", when its type is typ ("net").
func ParseNamespaceLink(target, typ string) (uint64, bool) {
	rest, ok := strings.CutPrefix(target, typ+":[")
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, "]")
	if !ok || digits == "" || digits[0] == '+' || digits[0] == '-' {
		return 0, false
	}
	ino, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return ino, true
}

// NetnsPathOfPID is the file that names the network namespace of process pid.
func NetnsPathOfPID(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/ns/net" }
