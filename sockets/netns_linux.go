package sockets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/reach-tools/reach/internal/sys"
)

// ListAllNamespaces lists the sockets selected by opt in every network
// namespace of this host, each with its Namespace and, where a cgroup names
// one, its Container. Namespaces are found through /proc/*/ns/net and
// /run/netns, each once, and entered one by one (a few at a time) on locked
// threads; owners are found in one pass over /proc.
//
// Namespaces it could not list are in Table.NotSeen, and said in
// Table.Warnings: without root it lists only its own namespace, and those of
// other users' processes are hidden. The error is for a failure to list at
// all (no /proc, a cancelled ctx).
func ListAllNamespaces(ctx context.Context, opt Options) (Table, error) {
	return listAll(ctx, opt, nil)
}

// listAll is ListAllNamespaces; beforeEnter, when set, runs before each
// namespace other than reach's own is entered (tests make it vanish there).
func listAll(ctx context.Context, opt Options, beforeEnter func(Namespace)) (Table, error) {
	cands, notSeen, err := discover(ctx)
	if err != nil {
		return Table{}, err
	}
	type result struct {
		socks    []Socket
		warnings []string
		notSeen  *NotSeen
	}
	results := make([]result, len(cands))
	// A few at a time: each namespace costs a few system calls, and
	// switching threads between namespaces is serialised by nothing.
	workers := min(4, runtime.GOMAXPROCS(0), len(cands))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				c := cands[i]
				if !c.ns.Self && beforeEnter != nil {
					beforeEnter(c.ns)
				}
				socks, w, err := c.list(ctx, opt)
				if err != nil {
					ns := notSeenFor(c.ns, err)
					results[i].notSeen = &ns
					continue
				}
				results[i] = result{socks: socks, warnings: w}
			}
		})
	}
	for i := range cands {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Table{}, err
	}

	var t Table
	total := 0
	for _, r := range results {
		total += len(r.socks)
	}
	socks := make([]Socket, 0, total)
	sources := map[string]bool{}
	for i, r := range results {
		if r.notSeen != nil {
			notSeen = append(notSeen, *r.notSeen)
			continue
		}
		ns := &cands[i].ns
		t.Namespaces = append(t.Namespaces, *ns)
		t.Warnings = append(t.Warnings, prefixed(ns, r.warnings)...)
		sources[ns.Source] = true
		socks = append(socks, r.socks...)
	}
	if t.Sockets, err = own(ctx, socks, opt, &t.Warnings); err != nil {
		return Table{}, err
	}
	for i := range t.Sockets {
		if s := &t.Sockets[i]; s.Container == nil {
			s.Container = s.Namespace.Container
		}
	}
	t.Source = "mixed"
	for s := range sources {
		if len(sources) == 1 {
			t.Source = s
		}
	}
	t.NotSeen = notSeen
	t.Warnings = append(t.Warnings, notSeenWarnings(notSeen, os.Geteuid())...)
	return t, nil
}

// prefixed names the namespace in each of its warnings.
func prefixed(ns *Namespace, warnings []string) []string {
	out := make([]string, len(warnings))
	for i, w := range warnings {
		out[i] = "network namespace " + ns.String() + ": " + w
	}
	return out
}

// ListNamespace lists the sockets selected by opt in the one network
// namespace ref names, each with its Namespace (and Container). Errors
// entering it are a *NamespaceError.
func ListNamespace(ctx context.Context, ref NamespaceRef, opt Options) (Table, error) {
	path, err := ref.file()
	if err != nil {
		return Table{}, err
	}
	ns, err := sys.OpenNetns(path)
	if err != nil {
		return Table{}, &NamespaceError{Ref: ref, Err: err}
	}
	defer ns.Close()
	cands, _, err := discover(ctx)
	if err != nil {
		return Table{}, err
	}
	c := &candidate{ns: Namespace{Inode: ns.Inode()}}
	if i := slices.IndexFunc(cands, func(c *candidate) bool { return c.ns.Inode == ns.Inode() }); i >= 0 {
		c = cands[i]
	}
	c.ns.Path = path
	if ref.PID != 0 {
		c.ns.PID = ref.PID
	}
	var socks []Socket
	var t Table
	if c.ns.Self {
		socks, t.Warnings, err = c.list(ctx, opt)
	} else {
		socks, t.Warnings, err = c.listIn(ctx, ns, opt)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Table{}, ctx.Err()
		}
		return Table{}, &NamespaceError{Ref: ref, Err: err}
	}
	if t.Sockets, err = own(ctx, socks, opt, &t.Warnings); err != nil {
		return Table{}, err
	}
	for i := range t.Sockets {
		if s := &t.Sockets[i]; s.Container == nil {
			s.Container = c.ns.Container
		}
	}
	t.Source = c.ns.Source
	t.Namespaces = []Namespace{c.ns}
	return t, nil
}

// Namespaces finds the network namespaces of this host, without entering
// them: through /proc/*/ns/net and the names in /run/netns, each namespace
// once. Reach's own comes first, then named ones by name, then the others
// by pid. What could not be read is in the NotSeen list.
func Namespaces(ctx context.Context) ([]Namespace, []NotSeen, error) {
	cands, notSeen, err := discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Namespace, len(cands))
	for i, c := range cands {
		out[i] = c.ns
	}
	return out, notSeen, nil
}

// candidate is a namespace found by discover, with the processes in it.
type candidate struct {
	ns   Namespace
	pids []int // in /proc order
}

// maxEntryTries bounds the processes tried in turn to enter a namespace
// whose processes exit meanwhile.
const maxEntryTries = 16

// discover finds the namespaces of the host.
func discover(ctx context.Context) ([]*candidate, []NotSeen, error) {
	self, err := sys.NetnsInode("/proc/self/ns/net")
	if err != nil {
		return nil, nil, fmt.Errorf("sockets: own network namespace: %w", err)
	}
	init, _ := sys.NetnsInode("/proc/1/ns/net") // hidden without root
	d, err := os.Open("/proc")
	if err != nil {
		return nil, nil, fmt.Errorf("sockets: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("sockets: listing /proc: %w", err)
	}
	byInode := map[uint64]*candidate{}
	var cands []*candidate
	add := func(ino uint64) *candidate {
		c := byInode[ino]
		if c == nil {
			c = &candidate{ns: Namespace{Inode: ino, Self: ino == self, Init: ino == init}}
			byInode[ino] = c
			cands = append(cands, c)
		}
		return c
	}
	add(self)
	var notSeen []NotSeen
	denied := 0
	var deniedErr error
	for _, p := range names {
		if p[0] < '0' || p[0] > '9' {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		pid, err := strconv.Atoi(p)
		if err != nil {
			continue
		}
		ino, err := sys.NetnsInode(sys.NetnsPathOfPID(pid))
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EPERM) {
			denied++
			deniedErr = err
			continue
		}
		if err != nil {
			continue // exited meanwhile
		}
		c := add(ino)
		c.pids = append(c.pids, pid)
		c.ns.Processes++
	}
	if denied > 0 {
		ns := notSeenFor(Namespace{}, deniedErr)
		ns.Processes = denied
		notSeen = append(notSeen, ns)
	}
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		notSeen = append(notSeen, notSeenError(Namespace{Path: netnsDir}, err))
	}
	for _, e := range ents { // sorted by name: the first name of a namespace wins
		path := netnsDir + "/" + e.Name()
		ino, err := sys.NetnsInode(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			notSeen = append(notSeen, notSeenError(Namespace{Name: e.Name(), Path: path}, err))
			continue
		}
		if c := add(ino); c.ns.Name == "" {
			c.ns.Name, c.ns.Path = e.Name(), path
		}
	}
	for _, c := range cands {
		if len(c.pids) > 0 {
			c.ns.PID = c.pids[0]
		}
		if !c.ns.Self && !c.ns.Init {
			c.ns.Container = containerOf(c.pids)
		}
	}
	slices.SortStableFunc(cands[1:], func(a, b *candidate) int {
		switch {
		case a.ns.Init != b.ns.Init:
			return map[bool]int{true: -1, false: 1}[a.ns.Init]
		case (a.ns.Name == "") != (b.ns.Name == ""):
			return map[bool]int{true: 1, false: -1}[a.ns.Name == ""]
		case a.ns.Name != b.ns.Name:
			return map[bool]int{true: -1, false: 1}[a.ns.Name < b.ns.Name]
		}
		return a.ns.PID - b.ns.PID
	})
	return cands, notSeen, nil
}

// notSeenError is notSeenFor, for errors that cannot mean the namespace vanished.
func notSeenError(ns Namespace, err error) NotSeen {
	n := notSeenFor(ns, err)
	if n.Reason == NotSeenVanished {
		n.Reason = NotSeenError
	}
	return n
}

// containerOf returns the container of the first of pids (trying a few)
// whose cgroup names one.
func containerOf(pids []int) *Container {
	for _, pid := range pids[:min(len(pids), maxEntryTries)] {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			continue
		}
		if c, ok := parseCgroup(string(b)); ok {
			return &c
		}
	}
	return nil
}

// list reads the candidate's sockets: in place for reach's own namespace
// (on a fresh goroutine, whose thread is in it even when the caller's is
// locked elsewhere), else by entering it through its name or one of its
// processes. It sets c.ns.Path, PID and Source to what was used.
func (c *candidate) list(ctx context.Context, opt Options) ([]Socket, []string, error) {
	if c.ns.Self {
		var t Table
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			t, err = read(ctx, opt, true)
		}()
		<-done
		c.ns.Source = t.Source
		c.tag(t.Sockets)
		return t.Sockets, t.Warnings, err
	}
	var paths []string
	var pids []int
	if c.ns.Name != "" {
		paths, pids = append(paths, c.ns.Path), append(pids, c.ns.PID)
	}
	for _, pid := range c.pids[:min(len(c.pids), maxEntryTries)] {
		paths, pids = append(paths, sys.NetnsPathOfPID(pid)), append(pids, pid)
	}
	err := error(&sys.NetnsError{Op: "open", Path: "/proc/*/ns/net", Err: fs.ErrNotExist})
	for i, path := range paths {
		var ns *sys.Netns
		ns, err = sys.OpenNetns(path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // that process exited; try another
		}
		if err != nil {
			return nil, nil, err
		}
		if ns.Inode() != c.ns.Inode { // the pid was reused by another process
			ns.Close()
			err = &sys.NetnsError{Op: "open", Path: path,
				Err: fmt.Errorf("now names another namespace: %w", fs.ErrNotExist)}
			continue
		}
		c.ns.Path, c.ns.PID = path, pids[i]
		socks, warnings, err := c.listIn(ctx, ns, opt)
		ns.Close()
		return socks, warnings, err
	}
	return nil, nil, err
}

// listIn reads the sockets of the open namespace ns, which is c's.
func (c *candidate) listIn(ctx context.Context, ns *sys.Netns, opt Options) ([]Socket, []string, error) {
	var t Table
	err := ns.Do(func() (err error) {
		t, err = read(ctx, opt, true)
		return err
	})
	c.ns.Source = t.Source
	c.tag(t.Sockets)
	return t.Sockets, t.Warnings, err
}

// tag points each socket at c's namespace, sorted as List sorts them (the
// table is sorted by namespace, in discover's order, then like List).
func (c *candidate) tag(socks []Socket) {
	sortSockets(socks)
	for i := range socks {
		socks[i].Namespace = &c.ns
	}
}
