package doctor

import (
	"os/exec"
	"syscall"
)

// privateMounts gives cmd a mount namespace of its own, a copy of ours
// whose mounts do not propagate back (Go makes / private in the child), so
// the files it binds are seen by it alone.
func privateMounts(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Unshareflags |= syscall.CLONE_NEWNS
}
