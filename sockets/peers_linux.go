package sockets

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/reach-tools/reach/internal/sys"
)

// ListPeers lists the network namespaces wired to the calling thread's own
// by a veth pair or the like (see Peer), with their addresses and the
// sockets opt selects in them. The caller's namespace is told apart by
// its own devices: each names, by an id its namespace keeps, the namespace
// its other end is in, and ListPeers asks the kernel for the id of every
// namespace of the host (found as ListAllNamespaces finds them). So a
// namespace of another test lab or another host's container on the same
// machine is not a peer.
//
// A pair whose other end could not be listed is in NotSeen: without root
// the namespaces of other users' processes (containers run as root) stay
// hidden. The error is for a failure to look at all.
func ListPeers(ctx context.Context, opt Options) (Peers, error) {
	self, err := sys.NetnsInode("/proc/thread-self/ns/net")
	if err != nil {
		return Peers{}, fmt.Errorf("sockets: own network namespace: %w", err)
	}
	links, err := sys.Links(ctx)
	if err != nil {
		return Peers{}, fmt.Errorf("sockets: %w", err)
	}
	names := map[int]string{}
	var wired []sys.Link // devices whose other end is in another namespace
	for _, l := range links {
		names[l.Index] = l.Name
		if l.PeerNetnsID >= 0 {
			wired = append(wired, l)
		}
	}
	if len(wired) == 0 {
		return Peers{Peers: []Peer{}, Sockets: []Socket{}}, nil
	}
	cands, notSeen, err := discover(ctx)
	if err != nil {
		return Peers{}, err
	}
	// Open every other namespace, to ask the id this one gives it.
	type opened struct {
		c  *candidate
		ns *sys.Netns
	}
	var open []opened
	defer func() {
		for _, o := range open {
			o.ns.Close()
		}
	}()
	for _, c := range cands {
		if c.ns.Inode == self {
			continue
		}
		if ns, ok := c.open(); ok {
			open = append(open, opened{c, ns})
		}
	}
	nss := make([]*sys.Netns, len(open))
	for i, o := range open {
		nss[i] = o.ns
	}
	ids, err := sys.NetnsIDs(ctx, nss)
	if err != nil {
		return Peers{}, fmt.Errorf("sockets: %w", err)
	}
	out := Peers{Peers: []Peer{}, Sockets: []Socket{}}
	var socks []Socket
	for _, l := range wired {
		i := slices.Index(ids, l.PeerNetnsID)
		if i < 0 {
			out.NotSeen = append(out.NotSeen, unfound(l, notSeen))
			continue
		}
		if peerIndex(out.Peers, open[i].c.ns.Inode) >= 0 {
			continue // a second device to the same namespace
		}
		c, ns := open[i].c, open[i].ns
		p := Peer{Link: l.Name, Bridge: names[l.Master]}
		var t Table
		err := ns.Do(func() (err error) {
			t, err = read(ctx, opt, true)
			c.ns.Source = t.Source
			if err != nil {
				return err
			}
			p.Addresses, err = Addresses()
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return Peers{}, ctx.Err()
			}
			out.NotSeen = append(out.NotSeen, notSeenFor(c.ns, err))
			continue
		}
		c.tag(t.Sockets)
		p.Namespace = c.ns
		out.Peers = append(out.Peers, p)
		out.Warnings = append(out.Warnings, prefixed(&c.ns, t.Warnings)...)
		socks = append(socks, t.Sockets...)
	}
	if out.Sockets, err = own(ctx, socks, opt, &out.Warnings); err != nil {
		return Peers{}, err
	}
	// Point each socket at its Peer's Namespace, which outlives the candidates.
	for i := range out.Sockets {
		s := &out.Sockets[i]
		if j := peerIndex(out.Peers, s.Namespace.Inode); j >= 0 {
			s.Namespace = &out.Peers[j].Namespace
		}
		if s.Container == nil {
			s.Container = s.Namespace.Container
		}
	}
	var entered []NotSeen
	for _, n := range out.NotSeen {
		if n.Namespace.Inode == 0 {
			out.Warnings = append(out.Warnings, n.Error)
		} else {
			entered = append(entered, n)
		}
	}
	out.Warnings = append(out.Warnings, notSeenWarnings(entered, os.Geteuid())...)
	return out, nil
}

// open opens the candidate's namespace by its name, else through one of
// its processes (trying a few, as they may exit), and checks it is still
// the same namespace. It sets c.ns.Path and PID to what was used.
func (c *candidate) open() (*sys.Netns, bool) {
	var paths []string
	var pids []int
	if c.ns.Name != "" {
		paths, pids = append(paths, c.ns.Path), append(pids, c.ns.PID)
	}
	for _, p := range c.pids[:min(len(c.pids), maxEntryTries)] {
		paths, pids = append(paths, sys.NetnsPathOfPID(p)), append(pids, p)
	}
	for i, path := range paths {
		ns, err := sys.OpenNetns(path)
		if err != nil {
			continue
		}
		if ns.Inode() != c.ns.Inode {
			ns.Close()
			continue
		}
		c.ns.Path, c.ns.PID = path, pids[i]
		return ns, true
	}
	return nil, false
}

// unfound says why the namespace at the far end of l was not found: the
// processes hidden from this user, or nothing that names it.
func unfound(l sys.Link, notSeen []NotSeen) NotSeen {
	for _, n := range notSeen {
		if n.Reason == NotSeenPermission {
			err := fmt.Errorf("%s leads to a network namespace among those hidden from uid %d: %w",
				l.Name, os.Geteuid(), n.Err)
			return NotSeen{Reason: NotSeenPermission, Err: err, Error: err.Error()}
		}
	}
	err := fmt.Errorf("%s leads to a network namespace that no process and no name in %s holds",
		l.Name, netnsDir)
	return NotSeen{Reason: NotSeenError, Err: err, Error: err.Error()}
}

// peerIndex returns the index of the peer in the namespace of that inode,
// -1 when none is.
func peerIndex(peers []Peer, inode uint64) int {
	return slices.IndexFunc(peers, func(p Peer) bool { return p.Namespace.Inode == inode })
}
