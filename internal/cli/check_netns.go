package cli

import (
	"iter"
	"os/exec"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/sockets"
)

// vantageRef reads --netns and --pid: the network namespace to run the
// ladder from, and whether one was given.
func vantageRef(cmd *cobra.Command, netns string, pid int) (sockets.NamespaceRef, bool, error) {
	byName, byPID := cmd.Flags().Changed("netns"), cmd.Flags().Changed("pid")
	switch {
	case byName && byPID:
		return sockets.NamespaceRef{}, false, usageErrorf("--netns %q and --pid %d: give one", netns, pid)
	case byPID && pid <= 0:
		return sockets.NamespaceRef{}, false, usageErrorf("--pid %d: a process id is 1 or more", pid)
	case byPID:
		return sockets.NamespaceRef{PID: pid}, true, nil
	case byName:
		ref, err := sockets.ParseNamespaceRef(netns)
		if err != nil {
			return ref, false, usageErrorf("--netns %q: give a name from ip netns list, or a path such as /proc/PID/ns/net", netns)
		}
		return ref, true, nil
	}
	return sockets.NamespaceRef{}, false, nil
}

// fromInside runs this check again inside the namespace ref names
// (doctor.RunFrom starts reach there), with the flags given but --netns and
// --pid, as --json, and yields its reports with their index; *errp gets why
// it failed, if it did.
func fromInside(env *Env, cmd *cobra.Command, ref sockets.NamespaceRef, targets []string, errp *error) iter.Seq2[int, *doctor.Report] {
	args := []string{"check", "--json"}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "netns", "pid", "json":
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	args = append(append(args, "--"), targets...)
	// /proc/self/exe: this very binary, even if its file was replaced since.
	child := exec.Command("/proc/self/exe", args...)
	return func(yield func(int, *doctor.Report) bool) {
		i := 0
		for r, err := range doctor.RunFrom(cmd.Context(), ref, child) {
			if err != nil {
				*errp = err
				return
			}
			if !yield(i, r) {
				return
			}
			i++
		}
	}
}
