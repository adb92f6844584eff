package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/probe"
)

// PathCheck traces the path to addresses that timed out or were unreachable,
// with UDP probes of rising TTL, and names the last hop that answered.
var PathCheck = CheckFunc{
	CheckName: "path",
	ReadsFrom: []string{"dns", "tcp", "host"}, // addresses; classes; which addresses are this host
	Fn:        checkPath,
}

func checkPath(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	var todo []int
	why := "not needed: the TCP probe got an answer"
	for i := range s.Addrs {
		switch c := s.Primary(i); {
		case i < len(s.Local) && s.Local[i]:
			if c == probe.Timeout || c == probe.HostUnreachable {
				why = "not needed: the target is this host"
			}
		case c == probe.Timeout || c == probe.HostUnreachable:
			todo = append(todo, i)
		case c == probe.NetUnreachable:
			why = "not needed: there is no route to trace"
		}
	}
	if len(todo) == 0 {
		return CheckResult{Status: Skip, Detail: why}
	}
	s.Path = make([][]sys.Hop, len(s.Addrs))
	errs := make([]error, len(s.Addrs))
	each(len(todo), func(j int) {
		i := todo[j]
		s.Path[i], errs[i] = trace(ctx, s, s.Addrs[i])
	})
	res := CheckResult{Status: Info}
	var parts []string
	for _, i := range todo {
		if errors.Is(errs[i], sys.ErrUnsupported) {
			return CheckResult{Status: Skip, Detail: "path probes are not supported on this OS"}
		}
		d := describePath(s.Addrs[i], s.Path[i])
		if errs[i] != nil {
			res.Status = Error
			d += fmt.Sprintf(" (stopped: %v)", errs[i])
		}
		parts = append(parts, d)
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}

// Path probing bounds: at most maxHops TTLs, each waiting up to hopWait,
// stopping after silentHops unanswered TTLs in a row, and at the deadline.
const (
	maxHops    = 16
	hopWait    = 300 * time.Millisecond
	silentHops = 2
	tracePort  = 33434 // traceroute's first port, as firewalls expect
)

// trace sends UDP probes with rising TTL until the destination answers, a
// local error, silentHops silent TTLs in a row, maxHops, or the deadline.
func trace(ctx context.Context, s *State, dst netip.Addr) ([]sys.Hop, error) {
	var hops []sys.Hop
	silent := 0
	for ttl := 1; ttl <= maxHops && ctx.Err() == nil; ttl++ {
		var h sys.Hop
		var err error
		s.Options.enter(func() error {
			h, err = sys.ProbeHop(ctx, netip.AddrPortFrom(dst, uint16(tracePort+ttl-1)), ttl, hopWait)
			return nil
		})
		if err != nil {
			return hops, err
		}
		hops = append(hops, h)
		if h.Reached || h.Errno != 0 && !h.From.IsValid() {
			break
		}
		if h.From.IsValid() && h.What != "time exceeded" {
			break // an unreachable from a router ends the path
		}
		if !h.From.IsValid() {
			if silent++; silent >= silentHops {
				break
			}
		} else {
			silent = 0
		}
	}
	return hops, nil
}

// lastAnswer returns the last hop that answered.
func lastAnswer(hops []sys.Hop) (sys.Hop, bool) {
	for i := len(hops) - 1; i >= 0; i-- {
		if hops[i].From.IsValid() {
			return hops[i], true
		}
	}
	return sys.Hop{}, false
}

func describePath(dst netip.Addr, hops []sys.Hop) string {
	var hs []string
	for _, h := range hops {
		switch {
		case h.From.IsValid():
			hs = append(hs, fmt.Sprintf("%d %s (%s, %s)", h.TTL, h.From, h.What, round(h.RTT)))
		case h.What != "":
			hs = append(hs, fmt.Sprintf("%d %s", h.TTL, h.What))
		default:
			hs = append(hs, fmt.Sprintf("%d *", h.TTL))
		}
	}
	d := fmt.Sprintf("to %s: %s", dst, strings.Join(hs, ", "))
	last, ok := lastAnswer(hops)
	switch {
	case !ok:
		d += "; no hop answered"
	case last.Reached:
		d += fmt.Sprintf("; %s itself answered at hop %d, so it is up", dst, last.TTL)
	default:
		d += fmt.Sprintf("; last answer from %s at hop %d", last.From, last.TTL)
	}
	return d
}
