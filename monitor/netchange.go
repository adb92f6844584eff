package monitor

import (
	"container/heap"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/reach-tools/reach/netwatch"
)

// Re-checks after a network change.
const (
	// RecheckGap spaces the re-probes that follow a change: enough of them
	// (Fall, or Rise) to move a state at once, close enough that an
	// endpoint a change broke goes down within a second.
	RecheckGap = 100 * time.Millisecond
	// keptChanges bounds the changes a monitor remembers (NetChanges).
	keptChanges = 100
)

// NetChange is a change of the network a source probes through, as the
// kernel announced it, and what followed: which endpoints were re-probed at
// once and which of them went down or came up.
type NetChange struct {
	ID      uint64            `json:"id"`
	Source  string            `json:"source"`
	Time    time.Time         `json:"time"`
	Summary string            `json:"summary"` // the burst in one line
	Count   int               `json:"count"`   // changes in the burst
	Changes []netwatch.Change `json:"changes"` // the first netwatch.MaxKept of them
	// Rechecked are the endpoints the change may affect, re-probed at once.
	Rechecked []string `json:"rechecked"`
	// Down and Up are the endpoints among them whose state changed while
	// their re-probes ran (and a second after); Within is how long after
	// the change the last of those came.
	Down   []string      `json:"down"`
	Up     []string      `json:"up"`
	Within time.Duration `json:"within_ns"`
}

// String says the change and its effect in one line: "route
// 198.18.0.0/24 dev r0 removed at 10:42:03; 3 endpoints went down within
// 0.4 s".
func (c NetChange) String() string {
	s := c.Summary
	var parts []string
	if n := len(c.Down); n > 0 {
		parts = append(parts, fmt.Sprintf("%s went down", plural(n, "endpoint")))
	}
	if n := len(c.Up); n > 0 {
		parts = append(parts, fmt.Sprintf("%s came up", plural(n, "endpoint")))
	}
	switch {
	case len(parts) > 0:
		s += fmt.Sprintf("; %s within %.1f s", joinAnd(parts), c.Within.Seconds())
	case len(c.Rechecked) > 0:
		s += fmt.Sprintf("; %s re-probed, no state changed", plural(len(c.Rechecked), "endpoint"))
	default:
		s += "; no endpoint affected"
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func joinAnd(parts []string) string {
	if len(parts) == 2 {
		return parts[0] + " and " + parts[1]
	}
	return parts[0]
}

// NetChanged records a change of this host's network and re-probes at once
// every endpoint it may affect (netwatch.Burst.Affects on the address each
// last connected to), RecheckGap apart, as many times as it takes to move
// a state (the larger of Rise and Fall). Endpoints it cannot affect keep
// their schedule.
func (m *Monitor) NetChanged(b netwatch.Burst) NetChange {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	c := m.addChangeLocked(LocalSource, b)
	rounds := max(m.alerts.Rise, m.alerts.Fall)
	for name, j := range m.jobs {
		e := m.entries[key{LocalSource, name}]
		if e == nil || !b.Affects(e.addr) {
			continue
		}
		c.Rechecked = append(c.Rechecked, name)
		e.change = c
		e.changeUntil = now.Add(time.Duration(rounds)*(j.ep.Timeout+RecheckGap) + time.Second)
		j.rechecks = rounds
		if j.running {
			j.rechecks++ // the probe in flight began before the change
		} else if j.index >= 0 {
			j.due = now
			heap.Fix(&m.queue, j.index)
		}
	}
	slices.Sort(c.Rechecked)
	m.log.Info("network change", "change", b.String(), "rechecking", len(c.Rechecked))
	m.notifyLocked()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return *c
}

// NoteChange records a change an agent saw of its own network (source is
// the agent's name) and re-probed itself: transitions of the named
// endpoints seen from source in the next window are counted as its effect.
func (m *Monitor) NoteChange(source string, b netwatch.Burst, endpoints []string,
	window time.Duration) NetChange {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.addChangeLocked(source, b)
	until := time.Now().Add(window)
	for _, name := range endpoints {
		if e := m.entries[key{source, name}]; e != nil {
			c.Rechecked = append(c.Rechecked, name)
			e.change, e.changeUntil = c, until
		}
	}
	slices.Sort(c.Rechecked)
	m.notifyLocked()
	return *c
}

func (m *Monitor) addChangeLocked(source string, b netwatch.Burst) *NetChange {
	m.changeID++
	c := &NetChange{ID: m.changeID, Source: source, Time: b.First, Summary: b.String(),
		Count: b.Count, Changes: b.Changes, Rechecked: []string{}, Down: []string{}, Up: []string{}}
	if len(m.changes) == keptChanges {
		m.changes = m.changes[1:]
	}
	m.changes = append(m.changes, c)
	m.seq++
	return c
}

// changeOfLocked returns the change an endpoint's transition at at follows,
// and counts the transition in it; nil when it follows none.
func (m *Monitor) changeOfLocked(e *entry, to State, at time.Time) *NetChange {
	c := changeFor(e, at)
	if c == nil {
		return nil
	}
	name := e.status.Endpoint
	switch to {
	case StateDown:
		c.Down = append(c.Down, name)
	case StateUp:
		c.Up = append(c.Up, name)
	default:
		return nil
	}
	c.Within = max(c.Within, at.Sub(c.Time))
	return c
}

// changeFor returns the change an endpoint's transition at at follows,
// counting nothing; nil when it follows none.
func changeFor(e *entry, at time.Time) *NetChange {
	c := e.change
	if c == nil || at.After(e.changeUntil) || at.Before(c.Time) {
		return nil
	}
	return c
}

// NetChanges returns the network changes remembered (the last 100), newest
// first.
func (m *Monitor) NetChanges() []NetChange {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]NetChange, 0, len(m.changes))
	for _, c := range slices.Backward(m.changes) {
		cc := *c
		cc.Rechecked, cc.Down, cc.Up = slices.Clone(c.Rechecked), slices.Clone(c.Down), slices.Clone(c.Up)
		out = append(out, cc)
	}
	return out
}

// lastAddr is the address a result connected (or tried to connect) to.
func lastAddr(prev netip.Addr, addr netip.AddrPort) netip.Addr {
	if addr.IsValid() {
		return addr.Addr().Unmap()
	}
	return prev
}
