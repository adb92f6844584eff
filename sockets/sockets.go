// Package sockets lists TCP sockets (IPv4 and IPv6) and the processes that
// own them, like `ss -tanp`, in one network namespace or in every one of the
// host. On Linux it asks the kernel over netlink sock_diag and falls back to
// /proc/net/tcp{,6}; owners are found by matching socket inodes against
// /proc/PID/fd.
//
// Both sources are per network namespace: List reports the namespace of the
// calling thread, so a caller that has entered a namespace on a locked OS
// thread sees that namespace's sockets. ListAllNamespaces lists every network
// namespace of the host (containers', ip netns ones) and ListNamespace one of
// them, each socket with its Namespace and, where the owner's cgroup names
// one, its Container (Docker, containerd/CRI, CRI-O, Podman). ListPeers lists
// the namespaces wired to the caller's by a veth pair (where a DNAT rule or
// a userland proxy such as docker-proxy, read by ProxyOf, leads), and
// Addresses and IsLocal say which addresses are this namespace's own.
package sockets

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ErrUnsupported is returned by List on operating systems it does not support.
var ErrUnsupported = errors.New("sockets: unsupported on this OS")

// State is a TCP state as the kernel names it.
type State string

// TCP states, numbered as in the kernel (include/net/tcp_states.h).
const (
	StateEstablished State = "ESTABLISHED"
	StateSynSent     State = "SYN_SENT"
	StateSynRecv     State = "SYN_RECV"
	StateFinWait1    State = "FIN_WAIT1"
	StateFinWait2    State = "FIN_WAIT2"
	StateTimeWait    State = "TIME_WAIT"
	StateClose       State = "CLOSE"
	StateCloseWait   State = "CLOSE_WAIT"
	StateLastAck     State = "LAST_ACK"
	StateListen      State = "LISTEN"
	StateClosing     State = "CLOSING"
	StateNewSynRecv  State = "NEW_SYN_RECV"
)

var kernelStates = [...]State{
	1: StateEstablished, 2: StateSynSent, 3: StateSynRecv, 4: StateFinWait1,
	5: StateFinWait2, 6: StateTimeWait, 7: StateClose, 8: StateCloseWait,
	9: StateLastAck, 10: StateListen, 11: StateClosing, 12: StateNewSynRecv,
}

const kernelListen = 10

// stateFromKernel names a kernel TCP state number.
func stateFromKernel(n uint8) State {
	if int(n) < len(kernelStates) && kernelStates[n] != "" {
		return kernelStates[n]
	}
	return State(fmt.Sprintf("STATE_%d", n))
}

// Process is a process holding a socket open.
type Process struct {
	PID     int    `json:"pid"`
	Command string `json:"command"` // the kernel's comm: executable name, at most 15 bytes
	User    string `json:"user"`    // user name, or the uid in decimal when it has no name
	UID     int    `json:"uid"`     // real uid
	State   string `json:"state"`   // "running", "sleeping", "stopped", ... from /proc/PID/status
	// Container is the container the process runs in, when its
	// /proc/PID/cgroup names one.
	Container *Container `json:"container,omitempty"`
}

// Socket is one TCP socket.
type Socket struct {
	Proto  string         `json:"proto"` // "tcp" (IPv4) or "tcp6" (IPv6, including dual-stack)
	Local  netip.AddrPort `json:"local"`
	Remote netip.AddrPort `json:"remote"`
	State  State          `json:"state"`
	// For LISTEN sockets RecvQ is the accept queue (connections waiting for
	// accept) and SendQ the backlog; RecvQ above SendQ means the queue is
	// full and new connections are dropped. Otherwise they are bytes queued.
	// The procfs source cannot see the backlog and leaves SendQ 0 for them.
	RecvQ uint32 `json:"recv_q"`
	SendQ uint32 `json:"send_q"`
	// V6Only is set for IPv6 sockets that refuse IPv4 (IPV6_V6ONLY). Only
	// the netlink source knows it: procfs leaves it false.
	V6Only bool   `json:"v6only,omitempty"`
	UID    int    `json:"uid"`   // owner of the socket
	Inode  uint64 `json:"inode"` // 0 for sockets no process holds (TIME_WAIT, requests)
	// Processes holding the socket; empty when none is visible (see
	// Table.Warnings for why).
	Processes []Process `json:"processes,omitempty"`
	// ProcessState is the state of the first owner ("running", "sleeping",
	// "stopped", ...), empty when there is none.
	ProcessState string `json:"process_state,omitempty"`
	// Namespace is the network namespace the socket is in. List leaves it
	// nil (the caller's namespace); ListAllNamespaces and ListNamespace
	// set it.
	Namespace *Namespace `json:"namespace,omitempty"`
	// Container is the container the socket belongs to: that of its first
	// owner that runs in one, or else that of its namespace.
	Container *Container `json:"container,omitempty"`
}

// Owner names who holds the socket: "postgres (pid 812)", "nginx (pids 10,
// 11)", several commands separated by commas, or "unknown process (uid 107)".
func (s Socket) Owner() string {
	if len(s.Processes) == 0 {
		return fmt.Sprintf("unknown process (uid %d)", s.UID)
	}
	var names []string
	pids := map[string][]string{}
	for _, p := range s.Processes {
		if p.Command == "" {
			p.Command = "process" // Windows: a pid whose program could not be named
		}
		if pids[p.Command] == nil {
			names = append(names, p.Command)
		}
		pids[p.Command] = append(pids[p.Command], strconv.Itoa(p.PID))
	}
	parts := make([]string, len(names))
	for i, n := range names {
		label := "pid"
		if len(pids[n]) > 1 {
			label = "pids"
		}
		parts[i] = fmt.Sprintf("%s (%s %s)", n, label, strings.Join(pids[n], ", "))
	}
	return strings.Join(parts, ", ")
}

// Accepts reports whether this listening socket takes connections to dst:
// same port, and the same address, or a wildcard address of a family that
// covers dst (a dual-stack [::] also takes IPv4, an IPV6_V6ONLY one does not).
func (s Socket) Accepts(dst netip.AddrPort) bool {
	if s.State != StateListen || s.Local.Port() != dst.Port() {
		return false
	}
	local, to := s.Local.Addr(), dst.Addr()
	to4 := to.Unmap().Is4()
	switch {
	case s.Proto == "tcp": // local is IPv4
		return to4 && (local.IsUnspecified() || local == to.Unmap())
	case local.IsUnspecified():
		return !to4 || !s.V6Only
	case local.Is4In6():
		return to4 && local.Unmap() == to.Unmap()
	default:
		return !to4 && local.WithZone("") == to.WithZone("")
	}
}

// Options selects sockets. The zero value lists every listening socket.
type Options struct {
	All     bool   // every state, not only LISTEN
	Port    uint16 // only sockets with this local port (0: any)
	PID     int    // only sockets held by this process (0: any)
	Process string // only sockets held by a process with this command name (case-insensitive)
	// Ports, when set, keeps only sockets whose local port it accepts. It
	// runs before owners are looked up, so a narrow filter saves the /proc
	// scan (the doctor asks for one port and its look-alikes).
	Ports func(port uint16) bool
}

// Table is the result of List, ListNamespace and ListAllNamespaces.
type Table struct {
	Sockets []Socket `json:"sockets"`
	// Source is "netlink" or "procfs"; "mixed" when namespaces listed
	// together were read from different sources (each Namespace says).
	Source   string   `json:"source"`
	Warnings []string `json:"warnings"` // what could not be seen, and why
	// Namespaces are the network namespaces listed (ListAllNamespaces and
	// ListNamespace), whether or not any socket in them matched.
	Namespaces []Namespace `json:"namespaces,omitempty"`
	// NotSeen are the namespaces, or processes' namespaces, that could not
	// be listed, with the reason; Warnings says the same in words.
	NotSeen []NotSeen `json:"not_seen,omitempty"`
}

// Listening returns the listening sockets on port (any port when 0).
func Listening(ctx context.Context, port uint16) ([]Socket, error) {
	t, err := List(ctx, Options{Port: port})
	return t.Sockets, err
}

// keep reports whether a socket passes the address and state filters, which
// do not need process information.
func (o Options) keep(s *Socket) bool {
	if !o.All && s.State != StateListen {
		return false
	}
	return (o.Port == 0 || s.Local.Port() == o.Port) && (o.Ports == nil || o.Ports(s.Local.Port()))
}

// keepOwner reports whether a socket passes the process filters.
func (o Options) keepOwner(s *Socket) bool {
	if o.PID == 0 && o.Process == "" {
		return true
	}
	for _, p := range s.Processes {
		if (o.PID == 0 || p.PID == o.PID) && (o.Process == "" || commandIs(p.Command, o.Process)) {
			return true
		}
	}
	return false
}

// commMax is the length at which the kernel truncates a command name.
const commMax = 15

// commandIs reports whether comm, a command name as the kernel keeps it, is
// name, which may be longer: "systemd-resolved" has comm "systemd-resolve".
func commandIs(comm, name string) bool {
	// Windows programs are named with their extension (python.exe), and
	// asked for with or without it.
	comm, name = trimExe(comm), trimExe(name)
	if len(comm) == commMax && len(name) > commMax {
		name = name[:commMax]
	}
	return strings.EqualFold(comm, name)
}

func trimExe(s string) string {
	if len(s) > 4 && strings.EqualFold(s[len(s)-4:], ".exe") {
		return s[:len(s)-4]
	}
	return s
}

// sortSockets orders by local port, then address, then state and remote, so
// output is stable.
func sortSockets(ss []Socket) {
	slices.SortFunc(ss, func(a, b Socket) int {
		return cmp.Or(
			cmp.Compare(a.Local.Port(), b.Local.Port()),
			a.Local.Addr().Compare(b.Local.Addr()),
			strings.Compare(string(a.State), string(b.State)),
			a.Remote.Compare(b.Remote),
			cmp.Compare(a.Inode, b.Inode),
		)
	})
}

// String formats a socket on one line, for logs and test failures.
func (s Socket) String() string {
	return fmt.Sprintf("%s %s %s %s recv-q=%d send-q=%d uid=%d inode=%d",
		s.Proto, s.Local, s.Remote, s.State, s.RecvQ, s.SendQ, s.UID, s.Inode)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		return strconv.Itoa(n) + " " + noun + "es"
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
