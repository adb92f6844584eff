//go:build !linux

package doctor

import "os/exec"

// privateMounts does nothing: there are no namespaces, and RunFrom fails
// before it would start cmd.
func privateMounts(cmd *exec.Cmd) {}
