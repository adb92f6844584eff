package sockets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/reach-tools/reach/internal/sys"
)

// List returns the TCP sockets selected by opt in the calling thread's
// network namespace, with their owning processes.
func List(ctx context.Context, opt Options) (Table, error) {
	return list(ctx, opt, true)
}

// list reads sockets from netlink (or, when it fails or useNetlink is false,
// from procfs), then finds their owners and applies the filters.
func list(ctx context.Context, opt Options, useNetlink bool) (Table, error) {
	t, err := read(ctx, opt, useNetlink)
	if err != nil {
		return Table{}, err
	}
	sortSockets(t.Sockets)
	if t.Sockets, err = own(ctx, t.Sockets, opt, &t.Warnings); err != nil {
		return Table{}, err
	}
	return t, nil
}

// read returns the sockets of the calling thread's network namespace that
// pass opt's address and state filters, without their owners, in a Table
// that says which source listed them.
func read(ctx context.Context, opt Options, useNetlink bool) (Table, error) {
	var t Table
	var nlErr error
	if useNetlink {
		t.Sockets, nlErr = listNetlink(ctx, opt)
		t.Source = "netlink"
		if err := ctx.Err(); err != nil {
			return Table{}, err
		}
	}
	if !useNetlink || nlErr != nil {
		var err error
		if t.Sockets, err = listProcfs(opt); err != nil {
			return Table{}, errors.Join(nlErr, err)
		}
		t.Source = "procfs"
		if nlErr != nil {
			t.Warnings = append(t.Warnings, fmt.Sprintf("netlink sock_diag failed (%v); read /proc/net/tcp "+
				"instead, which does not show listen backlogs (SEND-Q)", nlErr))
		}
	}
	return t, ctx.Err()
}

// own finds the owners of socks, keeps those that pass opt's process
// filters, in order, and appends to warnings what it could not see.
func own(ctx context.Context, socks []Socket, opt Options, warnings *[]string) ([]Socket, error) {
	w, err := attachOwners(ctx, socks, opt.PID)
	if err != nil {
		return nil, err
	}
	*warnings = append(*warnings, w...)
	return slices.DeleteFunc(socks, func(s Socket) bool { return !opt.keepOwner(&s) }), nil
}

func listNetlink(ctx context.Context, opt Options) ([]Socket, error) {
	states := uint32(1) << kernelListen
	if opt.All {
		states = ^uint32(0)
	}
	var socks []Socket
	for _, family := range []uint8{afInet, afInet6} {
		req := diagRequest(family, states)
		err := sys.NetlinkDump(ctx, netlinkSockDiag, sockDiagByFamily, req, func(m sys.NetlinkMessage) error {
			s, err := parseDiagMsg(m.Data)
			if err != nil {
				return err
			}
			if opt.keep(&s) {
				socks = append(socks, s)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sockets: sock_diag dump: %w", err)
		}
	}
	return socks, nil
}

func listProcfs(opt Options) ([]Socket, error) {
	var socks []Socket
	for _, proto := range []string{"tcp", "tcp6"} {
		// thread-self, not self: the namespace of this thread, which may
		// have entered another namespace than the process's main thread.
		name := "/proc/thread-self/net/" + proto
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) && proto == "tcp6" {
			continue // IPv6 disabled
		}
		if err != nil {
			return nil, fmt.Errorf("sockets: %w", err)
		}
		err = parseProcNet(f, proto, func(s Socket) error {
			if opt.keep(&s) {
				socks = append(socks, s)
			}
			return nil
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("sockets: reading %s: %w", name, err)
		}
	}
	return socks, nil
}

// attachOwners fills in Processes by scanning /proc/PID/fd of every process
// (or only pid, when not 0), and returns warnings about what it could not see.
func attachOwners(ctx context.Context, socks []Socket, pid int) ([]string, error) {
	byInode := make(map[uint64]int, len(socks)) // index in socks; inodes are unique
	for i, s := range socks {
		if s.Inode != 0 {
			byInode[s.Inode] = i
		}
	}
	if len(byInode) == 0 {
		return nil, nil
	}
	var pids []string
	if pid != 0 {
		pids = []string{strconv.Itoa(pid)}
	} else {
		d, err := os.Open("/proc")
		if err != nil {
			return nil, fmt.Errorf("sockets: %w", err)
		}
		pids, err = d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("sockets: listing /proc: %w", err)
		}
	}
	users := map[int]string{}
	denied := 0
	for _, p := range pids {
		if p[0] < '0' || p[0] > '9' {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dir := "/proc/" + p + "/fd/"
		d, err := os.Open(dir)
		if errors.Is(err, fs.ErrPermission) {
			denied++
			continue
		}
		if err != nil {
			continue // the process exited, or is a kernel thread
		}
		fds, _ := d.Readdirnames(-1)
		d.Close()
		inodes, refused := fdSockets(dir, fds)
		if refused {
			denied++
		}
		var proc *Process
		for _, ino := range inodes {
			i, ok := byInode[ino]
			if !ok {
				continue
			}
			if proc == nil {
				proc = readProcess(p, users)
				if proc == nil {
					break // exited
				}
			}
			s := &socks[i]
			if len(s.Processes) == 0 {
				s.ProcessState = proc.State
			}
			if s.Container == nil {
				s.Container = proc.Container
			}
			if !hasPID(s.Processes, proc.PID) {
				s.Processes = append(s.Processes, *proc)
			}
		}
	}
	unowned := 0
	for _, s := range socks {
		if s.Inode != 0 && len(s.Processes) == 0 {
			unowned++
		}
	}
	switch {
	case unowned == 0 || pid != 0:
		return nil, nil
	case denied > 0 && os.Geteuid() == 0:
		return []string{fmt.Sprintf("no owner found for %s: held by the kernel, by processes outside "+
			"this PID namespace, or by %s whose open files even root may not read (another user "+
			"namespace, or a security module)", plural(unowned, "socket"), plural(denied, "process"))}, nil
	case denied > 0:
		return []string{fmt.Sprintf("no owner found for %s: %s of other users do not let uid %d read "+
			"their open files; run as root (sudo) to see them",
			plural(unowned, "socket"), plural(denied, "process"), os.Geteuid())}, nil
	case os.Geteuid() != 0: // /proc may be mounted with hidepid
		return []string{fmt.Sprintf("no owner found for %s: held by the kernel, by processes outside "+
			"this PID namespace, or by processes hidden from uid %d; run as root (sudo) to see them",
			plural(unowned, "socket"), os.Geteuid())}, nil
	default:
		return []string{fmt.Sprintf("no owner found for %s: held by the kernel or by processes "+
			"outside this PID namespace", plural(unowned, "socket"))}, nil
	}
}

// fdSockets returns the socket inodes among the open files fds of a process
// (names in dir, its /proc/PID/fd/), and whether reading them was denied.
// Each is a readlink system call, so large fd tables are split among
// goroutines.
func fdSockets(dir string, fds []string) (inodes []uint64, denied bool) {
	workers := min(runtime.GOMAXPROCS(0), len(fds)/1024+1)
	if workers == 1 {
		return readSocketLinks(dir, fds)
	}
	parts := make([][]uint64, workers)
	refused := make([]bool, workers)
	chunk := (len(fds) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		part := fds[min(w*chunk, len(fds)):min((w+1)*chunk, len(fds))]
		wg.Go(func() { parts[w], refused[w] = readSocketLinks(dir, part) })
	}
	wg.Wait()
	return slices.Concat(parts...), slices.Contains(refused, true)
}

func readSocketLinks(dir string, fds []string) (inodes []uint64, denied bool) {
	link := make([]byte, 64) // "socket:[N]" fits; longer targets are not sockets
	for _, fd := range fds {
		n, err := syscall.Readlink(dir+fd, link)
		if err == syscall.EACCES {
			// Root without ptrace rights (another user namespace, an
			// LSM): the directory lists but its links do not resolve.
			return inodes, true
		}
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := parseSocketLink(link[:n]); ok {
			inodes = append(inodes, ino)
		}
	}
	return inodes, false
}

func hasPID(ps []Process, pid int) bool {
	for _, p := range ps {
		if p.PID == pid {
			return true
		}
	}
	return false
}

// readProcess reads /proc/PID/status, and /proc/PID/cgroup for its
// container; nil when the process is gone.
func readProcess(pid string, users map[int]string) *Process {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return nil
	}
	st, err := parseProcStatus(string(b))
	if err != nil {
		return nil
	}
	n, _ := strconv.Atoi(pid)
	name, ok := users[st.UID]
	if !ok {
		name = strconv.Itoa(st.UID)
		if u, err := user.LookupId(name); err == nil {
			name = u.Username
		}
		users[st.UID] = name
	}
	p := &Process{PID: n, Command: st.Name, User: name, UID: st.UID, State: st.State}
	if b, err := os.ReadFile("/proc/" + pid + "/cgroup"); err == nil {
		if c, ok := parseCgroup(string(b)); ok {
			p.Container = &c
		}
	}
	return p
}
