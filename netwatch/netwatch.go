// Package netwatch tells a program when the network it probes through
// changes: the kernel's own notifications of routes, addresses and links
// (rtnetlink) and of committed firewall rule sets (nf_tables generations,
// which iptables-nft makes too), coalesced into bursts. reach watch and
// reach agent re-probe the endpoints a burst may affect at once, instead of
// waiting for their next interval, and record the burst as an event.
//
// What it cannot see: rules changed through the legacy iptables back end
// (no notification exists; the next interval still finds their effect),
// and nf_tables changes when the process lacks CAP_NET_ADMIN (the watch
// says so once and goes on with the rest).
package netwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/reach-tools/reach/internal/sys"
)

// Kinds of change.
const (
	KindRoute    = "route"
	KindAddress  = "address"
	KindLink     = "link"
	KindFirewall = "firewall"
	// KindOverflow: the kernel dropped notifications (a burst too big for
	// the socket's buffer); anything may have changed.
	KindOverflow = "overflow"
)

// Change is one change of the network configuration.
type Change struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Op is "added", "removed", "up" or "down" (links), or "changed".
	Op string `json:"op"`
	// Prefix is what a route leads to, or an address with its prefix
	// length; invalid for links, firewalls and overflows.
	Prefix netip.Prefix `json:"prefix,omitzero"`
	// Detail says it as `ip monitor` would: "route 198.18.0.0/24 via
	// 198.18.1.1 dev r0 removed".
	Detail string `json:"detail"`
}

// Affects reports whether the change may change how a connection to addr
// goes: a route only for the addresses its prefix covers (a default route
// for every address of its family); an address only for addresses of its
// family (a new source to choose, a subnet come or gone), and a link-local
// one only for link-local addresses; anything else (a link, a firewall rule
// set, lost notifications) for every address.
func (c Change) Affects(addr netip.Addr) bool {
	addr = addr.Unmap()
	switch {
	case !c.Prefix.IsValid():
		return true
	case c.Kind == KindRoute:
		return c.Prefix.Contains(addr)
	case c.Kind == KindAddress:
		a := c.Prefix.Addr()
		if a.Is4() != addr.Is4() {
			return false
		}
		return !a.IsLinkLocalUnicast() || addr.IsLinkLocalUnicast()
	}
	return true
}

// Burst is changes that came close together, reported once.
type Burst struct {
	First, Last time.Time
	// Changes holds the first MaxKept changes; Count is how many there were.
	Changes []Change
	Count   int
}

// MaxKept bounds Burst.Changes: a container start can make hundreds.
const MaxKept = 20

// Affects reports whether any change of the burst may affect addr. An
// unknown address (the endpoint never resolved) is affected by every burst.
func (b Burst) Affects(addr netip.Addr) bool {
	if !addr.IsValid() || b.Count > len(b.Changes) {
		return true // not knowing is no reason to skip the re-probe
	}
	for _, c := range b.Changes {
		if c.Affects(addr) {
			return true
		}
	}
	return false
}

// String says the burst in one line: "route 198.18.0.0/24 dev r0 removed
// at 10:42:03 (and 9 more changes)".
func (b Burst) String() string {
	if len(b.Changes) == 0 {
		return "no change"
	}
	s := fmt.Sprintf("%s at %s", b.Changes[0].Detail, b.First.Format(time.TimeOnly))
	if more := b.Count - 1; more == 1 {
		s += " (and 1 more change)"
	} else if more > 1 {
		s += fmt.Sprintf(" (and %d more changes)", more)
	}
	return s
}

// Defaults for Options.
const (
	DefaultQuiet    = 25 * time.Millisecond
	DefaultMaxDelay = 500 * time.Millisecond
)

// Options tune Watch. The zero value watches this process's namespace.
type Options struct {
	// A burst ends Quiet after its last change (DefaultQuiet), and at
	// most MaxDelay after its first (DefaultMaxDelay), so a steady stream
	// of changes still gets re-probes.
	Quiet, MaxDelay time.Duration
	// RunIn, when set, runs the function that opens the kernel's sockets:
	// a namespace's Do, to watch that namespace.
	RunIn  func(func() error) error
	Logger *slog.Logger
}

// ErrUnsupported means this system has no notifications to watch.
var ErrUnsupported = errors.New("netwatch: watching network changes needs Linux rtnetlink")

// Watch calls fn with every burst of changes until ctx ends; fn runs on
// one goroutine at a time and should return quickly. It returns nil when
// ctx ends, and an error when the kernel's notifications cannot be had.
func Watch(ctx context.Context, opt Options, fn func(Burst)) error {
	if opt.Quiet <= 0 {
		opt.Quiet = DefaultQuiet
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = DefaultMaxDelay
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	run := opt.RunIn
	if run == nil {
		run = func(f func() error) error { return f() }
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan sys.NetEvent, 256)
	var mu sync.Mutex
	overflow := false
	f := newFilter()
	done := make(chan error, 1)
	go func() {
		// The kernel's sockets belong to the namespace of the thread that
		// makes them: run (a namespace's Do) holds it while they live.
		done <- run(func() error {
			if links, err := sys.Links(ctx); err == nil {
				f.seed(links)
			}
			return sys.SubscribeNet(ctx, func(ev sys.NetEvent) {
				select {
				case events <- ev:
				default: // the reader fell behind: say so, once
					mu.Lock()
					overflow = true
					mu.Unlock()
				}
			}, func(err error) { log.Warn("firewall changes will not be seen", "err", err) })
		})
	}()
	var cur *Burst
	var quiet, deadline <-chan time.Time
	flush := func() {
		if cur != nil {
			fn(*cur)
		}
		cur, quiet, deadline = nil, nil, nil
	}
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, sys.ErrUnsupported) {
				return ErrUnsupported
			}
			if err == nil {
				err = errors.New("netwatch: the kernel's notifications ended")
			}
			return fmt.Errorf("netwatch: %w", err)
		case ev := <-events:
			now := time.Now()
			mu.Lock()
			lost := overflow
			overflow = false
			mu.Unlock()
			if lost {
				ev = sys.NetEvent{Kind: KindOverflow}
			}
			c, ok := f.change(ev, now)
			if !ok {
				continue
			}
			if cur == nil {
				cur = &Burst{First: now}
				deadline = time.After(opt.MaxDelay)
			}
			cur.Last = now
			cur.Count++
			if len(cur.Changes) < MaxKept {
				cur.Changes = append(cur.Changes, c)
			}
			quiet = time.After(opt.Quiet)
		case <-quiet:
			flush()
		case <-deadline:
			flush()
		case <-ctx.Done():
			return nil
		}
	}
}
