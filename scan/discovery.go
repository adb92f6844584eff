package scan

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reach-tools/reach/discover"
)

// discovery holds what host discovery found, by address.
type discovery struct {
	found map[netip.Addr]discover.Result
	took  time.Duration
	opt   Options
}

// discoverHosts runs package discover over the targets, reporting progress
// as PhaseDiscovery. up, when set, gets each host found up as it is
// (without blocking).
func discoverHosts(ctx context.Context, targets []Target, opt Options, up func(discover.Result)) (*discovery, error) {
	addrs := make([]netip.Addr, 0, len(targets))
	for _, t := range targets {
		addrs = append(addrs, t.Addr.Unmap())
	}
	start := time.Now()
	var judged atomic.Int64
	stop := func() {}
	if opt.Progress != nil {
		total := int64(len(slices.Compact(slices.SortedFunc(slices.Values(addrs), netip.Addr.Compare))))
		stop = every(200*time.Millisecond, func() {
			opt.Progress(Progress{Phase: PhaseDiscovery, Done: judged.Load(), Total: total, Elapsed: time.Since(start)})
		})
	}
	res, err := discover.Run(ctx, addrs, discover.Options{PingPorts: opt.PingPorts, Source: opt.Source,
		Interface: opt.Interface, RunIn: opt.RunIn, Logger: opt.Logger,
		OnResult: func(r discover.Result) {
			judged.Add(1)
			if up != nil && r.State == discover.Up {
				up(r)
			}
		}})
	stop()
	d := &discovery{found: make(map[netip.Addr]discover.Result, len(res)), took: time.Since(start), opt: opt}
	for _, r := range res {
		d.found[r.Addr] = r
	}
	return d, err
}

// toScan returns the targets whose ports are to be scanned: every one
// discovery did not find down. It reports the down ones to OnHost.
func (d *discovery) toScan(targets []Target) []Target {
	var out []Target
	seen := map[netip.Addr]bool{}
	for _, t := range targets {
		a := t.Addr.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		if r, ok := d.found[a]; ok && r.State == discover.Down {
			if d.opt.OnHost != nil {
				d.opt.OnHost(d.host(t, r, false))
			}
			continue
		}
		out = append(out, t)
	}
	return out
}

// prime marks the hosts discovery found up, so their probes wait Timeout,
// not DiscoveryWait: they are there, and no ARP is to be waited out. A host
// discovery asked in vain on a path where others answered (behind a router
// that works) waits as long as discovery's last ping to it did (240 ms on a
// fast path; at least MinTimeout, at most Timeout): it had its three pings
// in 420 ms, and the router's verdict would come after 3 s, if ever
// (routers rate-limit their ICMP errors). It stays unconfirmed, so it is
// no-answer when nothing answers.
func (d *discovery) prime(e *engine) {
	if d == nil {
		return
	}
	for _, h := range e.hosts {
		r, ok := d.found[h.Addr]
		if !ok {
			continue
		}
		h.found = &r
		switch {
		case r.State == discover.Up:
			h.status.Store(statusUp)
			h.timeoutNs.Store(int64(e.opt.Timeout))
		case r.Probed:
			h.silentWait = min(e.opt.Timeout, max(e.opt.MinTimeout, r.Waited))
			h.timeoutNs.Store(int64(h.silentWait))
		}
	}
}

// merge adds the hosts discovery found down to a port scan's report.
func (d *discovery) merge(rep *Report, elapsed time.Duration) {
	if d == nil {
		return
	}
	rep.Discovery = d.took
	rep.Elapsed = elapsed
	for _, r := range d.found {
		if r.State == discover.Down {
			rep.Hosts = append(rep.Hosts, d.host(Target{Addr: r.Addr}, r, false))
		}
	}
	slices.SortFunc(rep.Hosts, func(a, b Host) int { return a.Addr.Compare(b.Addr) })
}

// report is the outcome of a scan that stopped after discovery.
func (d *discovery) report(targets []Target, elapsed time.Duration, hostsOnly bool) *Report {
	rep := &Report{Elapsed: elapsed, HostsOnly: hostsOnly}
	if d == nil {
		return rep
	}
	rep.Discovery = d.took
	seen := map[netip.Addr]bool{}
	for _, t := range targets {
		a := t.Addr.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		r, ok := d.found[a]
		if !ok {
			rep.Hosts = append(rep.Hosts, Host{Addr: a, Name: t.Name, State: HostUnknown})
			continue
		}
		rep.Hosts = append(rep.Hosts, d.host(t, r, true))
	}
	slices.SortFunc(rep.Hosts, func(a, b Host) int { return a.Addr.Compare(b.Addr) })
	return rep
}

// host is the Host of a target that discovery judged on its own: down, or
// (hostsOnly) any.
func (d *discovery) host(t Target, r discover.Result, hostsOnly bool) Host {
	h := Host{Addr: r.Addr, Name: t.Name, Reason: r.Reason, JudgedBy: Method(r.By), Evidence: r.Evidence}
	switch r.State {
	case discover.Up:
		h.State, h.SRTT = HostUp, r.RTT
	case discover.Down:
		h.State = HostUnreachable
	default:
		// Only with hostsOnly: nothing answered and the evidence is
		// thin, or nothing could be sent.
		h.State, h.Reason = HostNoAnswer, ReasonNoResponse
		if r.By == discover.None {
			h.State, h.Reason, h.JudgedBy = HostNoRoute, ReasonNoRoute, ByRoute
		}
	}
	if r.MAC != nil {
		h.MAC = r.MAC.String()
	}
	return h
}

// withDiscovery puts what discovery learnt into a host the port scan
// reported: an up host takes discovery's reason; a host discovery could not
// judge keeps the ports' verdict, with discovery's evidence when it has
// none of its own.
func withDiscovery(h Host, r discover.Result) Host {
	if r.MAC != nil {
		h.MAC = r.MAC.String()
	}
	if r.State == discover.Up && h.State == HostUp {
		h.Reason, h.JudgedBy, h.Evidence = r.Reason, Method(r.By), r.Evidence
		if h.SRTT == 0 {
			h.SRTT = r.RTT
		}
		return h
	}
	if h.Evidence == "" {
		h.Evidence = "discovery: " + r.Evidence
	}
	return h
}

// discoverAndScan runs discovery and, meanwhile, the port scan of the hosts
// it finds up in its first DiscoveryFloor (on a LAN, all the live ones:
// they answer at once, while discovery waits out the silent ones for
// 420 ms); then the port scan of every other host it did not find down.
func discoverAndScan(ctx context.Context, targets []Target, opt Options, start time.Time) (*Report, error) {
	var mu sync.Mutex
	var ups []discover.Result
	type outcome struct {
		d   *discovery
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		d, err := discoverHosts(ctx, targets, opt, func(r discover.Result) {
			mu.Lock()
			ups = append(ups, r)
			mu.Unlock()
		})
		done <- outcome{d, err}
	}()
	var out outcome
	var early *Report
	var earlyErr error
	scanned := map[netip.Addr]bool{}
	select {
	case out = <-done:
	case <-time.After(DiscoveryFloor):
		mu.Lock()
		found := ups
		mu.Unlock()
		if len(found) > 0 {
			early, earlyErr = scanFound(ctx, targets, found, opt, scanned)
		}
		out = <-done
	}
	d, err := out.d, out.err
	if err != nil && ctx.Err() == nil {
		return nil, err
	}
	var rep *Report
	rest := slices.DeleteFunc(d.toScan(targets), func(t Target) bool { return scanned[t.Addr.Unmap()] })
	if len(rest) > 0 && ctx.Err() == nil {
		e := newEngine(rest, opt)
		d.prime(e)
		e.start = time.Now() // Progress.Elapsed is the phase's
		stop := e.reportProgress()
		err = run(ctx, e)
		stop()
		rep = e.report(0)
	} else {
		rep = &Report{Ports: len(slices.Compact(slices.Sorted(slices.Values(opt.Ports))))}
		for _, t := range rest { // canceled before their ports: unknown
			rep.Hosts = append(rep.Hosts, Host{Addr: t.Addr.Unmap(), Name: t.Name, State: HostUnknown})
		}
	}
	if early != nil {
		rep.Hosts = append(rep.Hosts, early.Hosts...)
		rep.Counts.Open += early.Counts.Open
		rep.Counts.Closed += early.Counts.Closed
		rep.Counts.Filtered += early.Counts.Filtered
		rep.Probes += early.Probes
	}
	d.merge(rep, time.Since(start))
	if err == nil {
		err = earlyErr
	}
	return rep, err
}

// scanFound scans the ports of the hosts discovery found up so far, while
// it goes on, and marks them in scanned. Its progress is not reported:
// the bar is discovery's until discovery ends.
func scanFound(ctx context.Context, targets []Target, found []discover.Result, opt Options, scanned map[netip.Addr]bool) (*Report, error) {
	part := &discovery{found: make(map[netip.Addr]discover.Result, len(found)), opt: opt}
	for _, r := range found {
		part.found[r.Addr] = r
	}
	var ts []Target
	for _, t := range targets {
		a := t.Addr.Unmap()
		if _, ok := part.found[a]; ok && !scanned[a] {
			scanned[a] = true
			ts = append(ts, t)
		}
	}
	opt.Progress = nil
	e := newEngine(ts, opt)
	part.prime(e)
	e.start = time.Now()
	err := run(ctx, e)
	return e.report(0), err
}
