package discover

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// host is one address being asked.
type host struct {
	i      int // index into the results
	addr   netip.Addr
	g      *group
	by     Method // what its requests are
	kernel bool   // the kernel asks (unprivileged, on a segment): read its neighbour table
	tries  int    // requests sent
	first  time.Time
	sent   time.Time // the latest request
	done   bool
}

// answer is evidence that a host is there.
type answer struct {
	addr     netip.Addr
	by       Method
	reason   string
	mac      net.HardwareAddr
	at       time.Time
	evidence string
	// coarse: at is when a poll saw it (the neighbour table's state), not
	// when it arrived, so it is no RTT sample.
	coarse bool
}

// route is how the transport will ask an address.
type route struct {
	g      *group
	by     Method
	kernel bool
	final  *Result // judged without asking (an address of this host, or no way to ask)
}

// transport sends requests and reads answers; the Linux one uses sockets,
// tests a fake.
type transport interface {
	route(addr netip.Addr) route
	send(h *host)
	// poll waits up to wait for answers and passes each to fn.
	poll(wait time.Duration, fn func(answer))
	// neigh says what the kernel's neighbour table holds for addr (hosts
	// with kernel set).
	neigh(addr netip.Addr) neighEntry
	forget(h *host) // the host is judged: release what its requests hold
	close()
}

// launchBatch is how many hosts get their first request between two polls,
// and launchSlice how long that may take.
const (
	launchBatch = 128
	launchSlice = 2 * time.Millisecond
)

// pollMax bounds one poll, so deadlines are checked often enough.
const pollMax = 5 * time.Millisecond

// schedule asks every address through t and judges each by the package
// doc's rule. It runs on one goroutine.
func schedule(ctx context.Context, addrs []netip.Addr, opt Options, t transport) ([]Result, error) {
	var results []Result
	index := map[netip.Addr]int{}
	var queue []*host
	for _, a := range addrs {
		a = a.Unmap()
		if _, dup := index[a]; dup {
			continue
		}
		index[a] = len(results)
		results = append(results, Result{Addr: a})
		r := t.route(a)
		if r.final != nil {
			r.final.Addr = a
			results[len(results)-1] = *r.final
			if opt.OnResult != nil {
				opt.OnResult(*r.final)
			}
			continue
		}
		queue = append(queue, &host{i: len(results) - 1, addr: a, g: r.g, by: r.by, kernel: r.kernel})
	}
	byAddr := make(map[netip.Addr]*host, len(queue))
	for _, h := range queue {
		byAddr[h.addr] = h
	}
	judge := func(h *host, r Result) {
		h.done = true
		r.Addr = h.addr
		results[h.i] = r
		t.forget(h)
		if opt.OnResult != nil {
			opt.OnResult(r)
		}
	}
	onAnswer := func(a answer) {
		h := byAddr[a.addr]
		if h == nil || h.tries == 0 {
			return // not ours, or not asked yet (a stray packet)
		}
		if h.done && results[h.i].State == Up {
			return
		}
		d := a.at.Sub(h.sent)
		if h.tries == 1 && d >= 0 && !a.coarse {
			h.g.rtt.Update(d) // Karn: only an answer to the one request is a sample
		}
		h.g.answered++
		// An answer after a Down verdict (late, but before the end) wins.
		judge(h, Result{State: Up, By: a.by, Reason: a.reason, RTT: max(0, a.at.Sub(h.first)), MAC: a.mac, Evidence: a.evidence})
	}

	var flight []*host
	next := 0
	for {
		if err := ctx.Err(); err != nil {
			for _, h := range queue {
				if !h.done {
					t.forget(h)
				}
			}
			return results, err
		}
		now := time.Now()
		// A few at a time, answers read in between: a TCP ping's answer is
		// timed when it is read, so a long burst would inflate the RTTs.
		for n := 0; n < launchBatch && len(flight) < MaxInFlight && next < len(queue) &&
			(n == 0 || time.Since(now) < launchSlice); n++ {
			h := queue[next]
			next++
			h.tries, h.first, h.sent = 1, time.Now(), time.Now()
			t.send(h)
			flight = append(flight, h)
		}
		// Read what has come before judging anyone: after a long stall (a
		// loaded machine deschedules us) answers wait in the sockets, and a
		// deadline must not pass over them.
		t.poll(0, onAnswer)
		wait := pollMax
		keep := flight[:0]
		for _, h := range flight {
			if h.done {
				continue
			}
			deadline := h.sent.Add(h.g.wait(h.tries-1, opt))
			if now.Before(deadline) {
				wait = min(wait, deadline.Sub(now))
				keep = append(keep, h)
				continue
			}
			// A segment where nothing answered yet cannot make anyone
			// Down; retrying would only delay the Unknown.
			if h.tries < opt.Tries && (h.g.answered > 0 || !h.g.onLink) {
				h.tries++
				h.sent = time.Now()
				t.send(h)
				keep = append(keep, h)
				wait = min(wait, h.g.wait(h.tries-1, opt))
				continue
			}
			entry := unresolvedEntry
			if h.kernel {
				entry = t.neigh(h.addr)
			}
			by, sent := h.by, h.tries
			if by == TCP {
				sent = len(opt.PingPorts) // one per port, with the first request
			}
			if h.kernel {
				// The kernel asked: once, and again each second.
				by, sent = neighMethod(h.addr), 1+int(now.Sub(h.first)/time.Second)
			}
			st, ev := h.g.verdict(by, sent, now.Sub(h.first), entry, h.kernel)
			r := Result{State: st, By: by, Evidence: ev, Probed: st == Unknown && !h.g.onLink && h.g.answered > 0,
				Waited: h.g.wait(h.tries-1, opt)}
			switch st {
			case Down:
				r.Reason = ReasonNoResponse
			case Up: // the kernel's request was answered; read late
				r.Reason = neighReason(h.addr)
				r.RTT = now.Sub(h.first)
				h.g.answered++
			}
			judge(h, r)
		}
		flight = keep
		if len(flight) == 0 && next == len(queue) {
			return results, nil
		}
		if next < len(queue) && len(flight) < MaxInFlight {
			wait = 0 // more to launch: only read what has come
		}
		t.poll(max(wait, 0), onAnswer)
	}
}

// neighMethod is how a segment resolves addr: ARP or ND.
func neighMethod(addr netip.Addr) Method {
	if addr.Is4() {
		return ARP
	}
	return ND
}

// neighReason is the reason of an answer to neighMethod(addr).
func neighReason(addr netip.Addr) string {
	if addr.Is4() {
		return ReasonARPResponse
	}
	return ReasonNDResponse
}
