// Package sys holds the raw system interfaces reach needs, behind small
// functions: netlink requests (route lookups, neighbour tables, links and
// the ids a namespace gives others, and the dumps other packages parse, such
// as sock_diag's), network namespaces entered on a locked thread, bind
// mounts in a private mount namespace, path probes that read ICMP errors, a
// probe's own connect and its net.Dialer socket options (source, device,
// error queue), and the scan engine's TCP sockets, epoll loop, socket error
// queues and file limit, and an exclusive file lock (TryLock) that the
// kernel releases with its holder. Linux code is in _linux.go files; parsers of what
// the kernel answers are untagged, so they are tested and fuzzed on every
// OS. What only Linux code calls (the scan engine's sockets) has no version
// for other systems.
//
// It is the only package of reach that imports golang.org/x/sys/unix,
// besides the test lab internal/netlab, which only tests import;
// internal/archtest holds every other package to that.
package sys

import "errors"

// ErrUnsupported is returned on operating systems without the facility.
var ErrUnsupported = errors.New("sys: unsupported on this OS")
