package netwatch

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/reach-tools/reach/internal/sys"
)

// localTable is the kernel's table of this host's own and broadcast
// addresses: it changes with every address, which is reported already.
const localTable = 255

// filter turns the kernel's notifications into changes that matter: the
// kernel repeats a link's message for every attribute it touches and an
// IPv6 address's for every flag (tentative, then not), and those change
// nothing about how a packet leaves.
type filter struct {
	mu    sync.Mutex
	names map[int]string // interface index → name
	up    map[int]bool   // interface index → up and running
	addrs map[netip.Prefix]int
}

func newFilter() *filter {
	return &filter{names: map[int]string{}, up: map[int]bool{}, addrs: map[netip.Prefix]int{}}
}

// seed learns the interfaces that exist before the watch starts.
func (f *filter) seed(links []sys.Link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range links {
		f.names[l.Index], f.up[l.Index] = l.Name, l.Up
	}
}

func (f *filter) dev(idx int) string {
	if n := f.names[idx]; n != "" {
		return n
	}
	return fmt.Sprintf("#%d", idx)
}

// change describes ev, or returns false when it changes nothing that
// matters.
func (f *filter) change(ev sys.NetEvent, now time.Time) (Change, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "added"
	if ev.Removed {
		op = "removed"
	}
	c := Change{Time: now, Kind: ev.Kind, Op: op}
	switch ev.Kind {
	case KindRoute:
		r := ev.Route
		if r.Table == localTable || !r.Prefix.IsValid() {
			return c, false
		}
		c.Prefix = r.Prefix
		var b strings.Builder
		fmt.Fprintf(&b, "route %s", r.Prefix)
		if r.Type != "unicast" && r.Type != "" {
			b.Reset()
			fmt.Fprintf(&b, "route %s %s", r.Type, r.Prefix)
		}
		if r.Gateway.IsValid() {
			fmt.Fprintf(&b, " via %s", r.Gateway)
		}
		if r.IfIndex > 0 {
			fmt.Fprintf(&b, " dev %s", f.dev(r.IfIndex))
		}
		c.Detail = b.String() + " " + op
	case KindAddress:
		if !ev.Addr.IsValid() {
			return c, false
		}
		_, known := f.addrs[ev.Addr]
		switch {
		case ev.Removed:
			delete(f.addrs, ev.Addr)
		case known:
			return c, false // a flag changed (IPv6 DAD), not the address
		default:
			f.addrs[ev.Addr] = ev.IfIndex
		}
		c.Prefix = ev.Addr
		c.Detail = fmt.Sprintf("address %s dev %s %s", ev.Addr, f.dev(ev.IfIndex), op)
	case KindLink:
		name := ev.Link.Name
		if name == "" {
			name = f.dev(ev.IfIndex)
		}
		was, known := f.up[ev.IfIndex]
		switch {
		case ev.Removed:
			delete(f.up, ev.IfIndex)
			delete(f.names, ev.IfIndex)
		case known && was == ev.Link.Up:
			return c, false // another attribute; same state
		case known:
			op = map[bool]string{true: "up", false: "down"}[ev.Link.Up]
			f.up[ev.IfIndex], f.names[ev.IfIndex] = ev.Link.Up, name
		default:
			f.up[ev.IfIndex], f.names[ev.IfIndex] = ev.Link.Up, name
		}
		c.Op = op
		c.Detail = fmt.Sprintf("link %s %s", name, op)
	case KindFirewall:
		c.Op = "changed"
		c.Detail = fmt.Sprintf("nftables rule set changed (generation %d)", ev.Gen)
	case KindOverflow:
		c.Op = "changed"
		c.Detail = "changes lost (the kernel's notification buffer overflowed)"
	default:
		return c, false
	}
	return c, true
}
