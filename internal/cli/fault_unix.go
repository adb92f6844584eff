//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// detach puts c in a session of its own: no signal of our terminal or
// process group reaches it.
func detach(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }
