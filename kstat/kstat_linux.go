package kstat

import (
	"fmt"

	"github.com/reach-tools/reach/internal/sys"
)

// Read takes a snapshot of the calling thread's network namespace (the
// process's, unless the caller entered another on a locked thread). It fails
// only when /proc is not there; what it could not read is in Missing.
func Read() (Snapshot, error) {
	s, err := read("/proc")
	if err != nil {
		return Snapshot{}, err
	}
	if s.Netns, err = sys.NetnsInode("/proc/thread-self/ns/net"); err != nil {
		s.Missing = append(s.Missing, missing("/proc/thread-self/ns/net", err))
	}
	return s, nil
}

// ReadNamespace takes a snapshot of the network namespace at path: an ip
// netns name's /run/netns/NAME, or /proc/PID/ns/net. Entering it needs root.
func ReadNamespace(path string) (Snapshot, error) {
	ns, err := sys.OpenNetns(path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("kstat: %w", err)
	}
	defer ns.Close()
	var s Snapshot
	if err := ns.Do(func() (err error) { s, err = read("/proc"); return err }); err != nil {
		return Snapshot{}, fmt.Errorf("kstat: %w", err)
	}
	s.Netns = ns.Inode()
	return s, nil
}
