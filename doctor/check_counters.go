package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/reach-tools/reach/kstat"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// CounterSource reads the kernel's network counters of the namespace the
// probes run in (the calling thread's, inside Options.Enter); the kstat
// package is the default.
type CounterSource interface {
	Read(ctx context.Context) (kstat.Snapshot, error)
}

// ConnectionSource is a SocketSource that also lists the TCP sockets, in
// any state, whose local port keep accepts: who holds the ephemeral ports.
// The default source is one; without it the kernel check does not count
// the ports in use.
type ConnectionSource interface {
	Connections(ctx context.Context, keep func(port uint16) bool) ([]sockets.Socket, error)
}

type kstatCounters struct{}

func (kstatCounters) Read(context.Context) (kstat.Snapshot, error) { return kstat.Read() }

func (hostSockets) Connections(ctx context.Context, keep func(uint16) bool) ([]sockets.Socket, error) {
	t, err := sockets.List(ctx, sockets.Options{All: true, Ports: keep})
	return t.Sockets, err
}

func (o *Options) counterSource() CounterSource {
	if o.Counters != nil {
		return o.Counters
	}
	return kstatCounters{}
}

// readCounters takes a snapshot where the probes run.
func (s *State) readCounters(ctx context.Context) (kstat.Snapshot, error) {
	var snap kstat.Snapshot
	err := s.Options.enter(func() (err error) {
		snap, err = s.Options.counterSource().Read(ctx)
		return err
	})
	return snap, err
}

// CountersCheck reads the kernel's counters of the namespace the probes
// run in before they start, for KernelCheck to compare with after them.
var CountersCheck = CheckFunc{
	CheckName: "counters",
	Fn:        checkCounters,
}

func checkCounters(ctx context.Context, s *State) CheckResult {
	snap, err := s.readCounters(ctx)
	if errors.Is(err, kstat.ErrUnsupported) {
		return CheckResult{Status: Skip, Detail: "the kernel's counters are not read on this OS"}
	}
	if err != nil {
		return CheckResult{Status: Error, Detail: "could not read the kernel's counters: " + err.Error()}
	}
	s.Before = &snap
	return CheckResult{Status: Info, Detail: fmt.Sprintf("read %s of %s before the probes%s",
		count(len(snap.Counters), "kernel counter"), s.netnsLabel(snap.Netns), missingNote(snap.Missing))}
}

// RemoteCounters is a RemoteEvidence that also reads the kernel's counters
// of the target host (the agent's namespace there), so the kernel check
// counts what the target's kernel saw during the probes: SYNs it dropped to
// a full accept queue, its conntrack table. agent.Client and
// agent.Discovery are.
type RemoteCounters interface {
	Counters(ctx context.Context, addr netip.AddrPort) (kstat.Snapshot, error)
}

// AgentCountersCheck asks the agent of each address that is another host's
// for its kernel counters as the probes start, when Options.Remote can
// (RemoteCounters); KernelCheck asks again after them.
var AgentCountersCheck = CheckFunc{
	CheckName: "agent-counters",
	ReadsFrom: []string{"dns"}, // the addresses
	Fn:        checkAgentCounters,
}

func checkAgentCounters(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	rc, ok := s.Options.Remote.(RemoteCounters)
	if !ok {
		return CheckResult{Status: Skip, Detail: "no agent to ask for the target host's kernel counters"}
	}
	var self HostEvidence
	err := s.Options.enter(func() (err error) {
		self.Addresses, err = s.Options.socketSource().Addresses()
		return err
	})
	if err != nil {
		return CheckResult{Status: Error, Detail: "could not list this host's addresses: " + err.Error()}
	}
	var others []int
	for i, a := range s.Addrs {
		if !self.isLocal(a) {
			others = append(others, i)
		}
	}
	if len(others) == 0 {
		return CheckResult{Status: Skip, Detail: "the target is this host: the counters check reads its counters"}
	}
	s.AgentBefore = make([]*kstat.Snapshot, len(s.Addrs))
	errs := make([]error, len(s.Addrs))
	each(len(others), func(j int) {
		i := others[j]
		snap, err := rc.Counters(ctx, s.addrPort(i))
		if err != nil {
			errs[i] = err
			return
		}
		s.AgentBefore[i] = &snap
	})
	res := CheckResult{Status: Info}
	var parts []string
	for _, i := range others {
		if errs[i] != nil {
			res.Status = Error
			parts = append(parts, fmt.Sprintf("%s: %v", s.Addrs[i], errs[i]))
			continue
		}
		parts = append(parts, fmt.Sprintf("read %s of %s's agent (%s) before the probes",
			count(len(s.AgentBefore[i].Counters), "kernel counter"), s.Addrs[i], netnsName(s.AgentBefore[i].Netns)))
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}

// KernelCheck reads the kernel's counters again after the probes and says
// what the kernel counted meanwhile, in the namespace the probes ran in:
// SYNs dropped to a full accept queue (confirming overloaded, with the
// listener), SYN cookies sent, a full conntrack table and the packets it
// dropped (conntrack-full), and, when a connect failed with EADDRNOTAVAIL,
// the ephemeral ports in use towards the address against
// net.ipv4.ip_local_port_range.
var KernelCheck = CheckFunc{
	CheckName: "kernel",
	// addresses; classes; listeners and which addresses are this host;
	// the counters before, here and at the agents
	ReadsFrom: []string{"dns", "tcp", "host", "counters", "agent-counters"},
	Fn:        checkKernel,
}

func checkKernel(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	if s.Before == nil {
		return CheckResult{Status: Skip, Detail: "no counters from before the probes (see counters)"}
	}
	after, err := s.readCounters(ctx)
	if err != nil {
		return CheckResult{Status: Error, Detail: "could not read the kernel's counters after the probes: " + err.Error()}
	}
	d, err := kstat.Diff(*s.Before, after)
	if err != nil {
		return CheckResult{Status: Error, Detail: err.Error()}
	}
	s.Kernel = &d
	k := kernelView{s: s, d: d, where: s.netnsLabel(d.Netns)}
	res := CheckResult{Status: Pass}
	parts := []string{k.summary()}
	agents := k.agents(ctx)
	for i := range s.Addrs {
		// The target's kernel: this one for an address of this host, else
		// its agent's, when it could be asked.
		target := agents[i]
		if i < len(s.Local) && s.Local[i] {
			target = &k
		}
		if target != nil {
			fs, notes := target.listen(i)
			res.Findings = append(res.Findings, fs...)
			parts = append(parts, notes...)
		}
		if target != nil && target != &k {
			parts = append(parts, target.summary())
			if f, ok := target.conntrack(i); ok {
				res.Findings = append(res.Findings, f)
			}
		}
		if agents[i] == nil && i < len(s.AgentBefore) && s.AgentBefore[i] != nil {
			parts = append(parts, fmt.Sprintf("%s: %s", s.Addrs[i], k.agentNote(i)))
		}
		if f, ok := k.conntrack(i); ok {
			res.Findings = append(res.Findings, f)
		}
		if f, note, ok := k.ports(ctx, i); ok {
			res.Findings = append(res.Findings, f)
			parts = append(parts, note)
		} else if note != "" {
			parts = append(parts, note)
		}
	}
	if len(res.Findings) > 0 {
		res.Status = Fail
	}
	res.Detail = strings.Join(slices.Compact(parts), "; ")
	return res
}

// kernelView is what a kernel counted over the probes: this host's (where
// the probes ran), or the target host's, read by its agent.
type kernelView struct {
	s     *State
	d     kstat.Delta
	where string // the namespace, for evidence
	// agent names the target host's agent that reported the counters;
	// empty for this host's.
	agent string
	// agentErr is why the agent's counters after the probes are missing.
	agentErr []error
}

// agents asks each agent asked before the probes for its counters again,
// and returns, per address, what its host's kernel counted meanwhile.
func (k *kernelView) agents(ctx context.Context) []*kernelView {
	s := k.s
	out := make([]*kernelView, len(s.Addrs))
	k.agentErr = make([]error, len(s.Addrs))
	rc, ok := s.Options.Remote.(RemoteCounters)
	if !ok {
		return out
	}
	each(len(s.Addrs), func(i int) {
		if i >= len(s.AgentBefore) || s.AgentBefore[i] == nil || s.host(i) == nil {
			return
		}
		after, err := rc.Counters(ctx, s.addrPort(i))
		var d kstat.Delta
		if err == nil {
			d, err = kstat.Diff(*s.AgentBefore[i], after)
		}
		if err != nil {
			k.agentErr[i] = err
			return
		}
		out[i] = &kernelView{s: s, d: d, agent: s.host(i).Host,
			where: fmt.Sprintf("%s of %s", netnsName(d.Netns), s.host(i).Host)}
	})
	return out
}

// agentNote says why the target's counters over the probes are missing.
func (k *kernelView) agentNote(i int) string {
	if err := k.agentErr[i]; err != nil {
		return "its agent's counters after the probes: " + err.Error()
	}
	return "its agent gave no evidence (see host): its counters are left out"
}

// summary says what moved, and the conntrack table's fill.
func (k kernelView) summary() string {
	d := k.d
	var moved []string
	for _, c := range []string{kstat.ListenOverflows, kstat.ListenDrops, kstat.SyncookiesSent} {
		if n := d.Counters[c]; n != 0 {
			moved = append(moved, fmt.Sprintf("%s +%d", c, n))
		}
	}
	s := fmt.Sprintf("over %s in %s: ", round(d.Interval), k.where)
	if k.agent != "" {
		s = fmt.Sprintf("%s counted over %s in %s: ", k.agent, round(d.Interval), netnsName(d.Netns))
	}
	if len(moved) == 0 {
		s += "no SYN dropped to a full accept queue, no SYN cookie sent"
	} else {
		s += strings.Join(moved, ", ")
	}
	if n := d.Counters[kstat.SyncookiesSent]; n > 0 {
		s += fmt.Sprintf(" (%s sent: a listener's SYN queue overflowed, from a SYN flood or a server too slow to finish handshakes; or net.ipv4.tcp_syncookies is 2)", count(int(n), "SYN cookie"))
	}
	switch c := d.Conntrack; {
	case c == nil:
		s += "; no conntrack table (nf_conntrack not loaded, or not readable)"
	default:
		s += fmt.Sprintf("; conntrack %d of %d entries", c.Count, c.Max)
		if n := c.Stats[kstat.ConntrackDrop]; n > 0 {
			s += fmt.Sprintf(", %s dropped for want of a free entry", count(int(n), "packet"))
		}
		if n := c.Stats[kstat.ConntrackEarlyDrop]; n > 0 {
			s += fmt.Sprintf(", %s evicted early to make room", count(int(n), "entry"))
		}
	}
	return s
}

// overloadFix is the fix of every overloaded finding.
const overloadFix = "the server does not accept fast enough: look for a stuck accept loop or exhausted workers; raise the listen backlog (and net.core.somaxconn) only if it is merely bursty"

// listen confirms a full accept queue at address i, a listener of this
// namespace, with the SYNs the kernel dropped to it.
func (k kernelView) listen(i int) ([]Finding, []string) {
	s, d := k.s, k.d
	drops := d.Counters[kstat.ListenOverflows]
	if drops <= 0 || s.host(i) == nil {
		return nil, nil
	}
	ap, class := s.addrPort(i), s.Primary(i)
	var sk *sockets.Socket
	for j, l := range s.host(i).Listening {
		if l.Local.Port() == ap.Port() && accepts(l, ap.Addr()) {
			sk = &s.host(i).Listening[j]
			break
		}
	}
	if sk == nil {
		return nil, nil
	}
	full := sk.SendQ > 0 && sk.RecvQ > sk.SendQ
	if !full && class != probe.Timeout {
		return nil, []string{fmt.Sprintf("%s listens on %s with room in its queue now (%d of %d)", sk.Owner(), sk.Local, sk.RecvQ, sk.SendQ)}
	}
	ev := fmt.Sprintf("the kernel dropped %s to a full accept queue of %s on %s during the probes (TcpExt ListenOverflows +%d, ListenDrops +%d in %s)",
		count(int(drops), "SYN"), sk.Owner(), sk.Local, drops, d.Counters[kstat.ListenDrops], k.where)
	if n := d.Counters[kstat.SyncookiesSent]; n > 0 {
		ev += fmt.Sprintf("; it sent %s meanwhile", count(int(n), "SYN cookie"))
	}
	f := Finding{Cause: Overloaded, Confidence: Confirmed, Addr: s.label(i),
		Issue: "Server's accept queue is full", Evidence: ev, Fix: overloadFix}
	if !full {
		// The queue has room now: it filled in a burst, while the probes ran.
		f.Confidence = Likely
		f.Evidence += fmt.Sprintf("; its queue is %d of %d now: it fills in bursts", sk.RecvQ, sk.SendQ)
	}
	return []Finding{f}, nil
}

// failed reports whether the probes of address i saw something a full
// conntrack table causes: SYNs that vanish, or a send the kernel refused.
func failed(c probe.Class) bool {
	return c == probe.Timeout || c == probe.LocalError
}

// conntrack names a full connection tracking table as the cause of
// address i's failure.
func (k kernelView) conntrack(i int) (Finding, bool) {
	s, c := k.s, k.d.Conntrack
	if c == nil || !failed(s.Primary(i)) {
		return Finding{}, false
	}
	drops := c.Stats[kstat.ConntrackDrop]
	if drops <= 0 && !c.Full() {
		return Finding{}, false
	}
	issue := "The connection tracking table of this host is full"
	if k.agent != "" {
		issue = "The connection tracking table of the target host is full"
	}
	f := Finding{Cause: ConntrackFull, Confidence: Confirmed, Addr: s.label(i),
		Issue: issue,
		Evidence: fmt.Sprintf("conntrack holds %d of %d entries in %s (net.netfilter.nf_conntrack_count of nf_conntrack_max), and the kernel dropped %s for want of a free entry during the probes (/proc/net/stat/nf_conntrack drop +%d)",
			c.Count, c.Max, k.where, count(int(drops), "packet"), drops),
		Fix: "find what holds so many entries (conntrack -L, conntrack -S); raise net.netfilter.nf_conntrack_max (set in the host's namespace: it is one limit for all) and nf_conntrack_buckets, or shorten the timeouts of idle entries (net.netfilter.nf_conntrack_tcp_timeout_established, ..._udp_timeout)"}
	if drops <= 0 {
		// Full now, but no drop counted: new entries may have evicted
		// unconfirmed ones, so the probe's SYN need not have been the one lost.
		f.Confidence = Likely
		f.Evidence = fmt.Sprintf("conntrack holds %d of %d entries in %s (nf_conntrack_count of nf_conntrack_max): new connections are dropped unless an unreplied entry can be evicted (early_drop +%d during the probes)",
			c.Count, c.Max, k.where, c.Stats[kstat.ConntrackEarlyDrop])
	}
	return f, true
}

// ports counts, when a connect to address i failed with EADDRNOTAVAIL, the
// ephemeral ports held towards it against the range the kernel picks from.
func (k kernelView) ports(ctx context.Context, i int) (Finding, string, bool) {
	s := k.s
	if s.Primary(i) != probe.LocalError || !errors.Is(probeErr(s, i), syscall.EADDRNOTAVAIL) {
		return Finding{}, "", false
	}
	ap, pr := s.addrPort(i), k.d.PortRange
	src, ok := s.Options.socketSource().(ConnectionSource)
	if !ok || pr.Size() == 0 {
		return Finding{}, "", false
	}
	inRange := func(p uint16) bool { return p >= pr.Low && p <= pr.High }
	var socks []sockets.Socket
	err := s.Options.enter(func() (err error) {
		socks, err = src.Connections(ctx, inRange)
		return err
	})
	if err != nil {
		return Finding{}, "could not list the sockets holding ephemeral ports: " + err.Error(), false
	}
	var held []sockets.Socket
	for _, sk := range socks {
		if sk.Remote == ap && inRange(sk.Local.Port()) {
			held = append(held, sk)
		}
	}
	note := fmt.Sprintf("%d of the %d ephemeral ports (net.ipv4.ip_local_port_range %s) are held by sockets to %s", len(held), pr.Size(), pr, ap)
	if len(held) < pr.Size()*9/10 {
		// Something else is short: the source address, or ports bound
		// without connect (they take a port from every destination).
		return Finding{}, note + ": not the ports towards it, then; the source address may be gone (EADDRNOTAVAIL)", false
	}
	f := Finding{Cause: LocalError, Confidence: Confirmed, Addr: s.label(i), refines: true,
		Issue: fmt.Sprintf("Ephemeral ports towards %s are used up", ap),
		Evidence: fmt.Sprintf("all %d ephemeral ports of net.ipv4.ip_local_port_range %s that reach %s are taken: %s hold one (%s), so connect fails with EADDRNOTAVAIL (seen in %s)",
			pr.Size(), pr, ap, count(len(held), "socket"), describeHolders(held), k.where),
		Fix: "reuse connections (keep-alive, a pool) instead of opening one per request; widen the range (sysctl net.ipv4.ip_local_port_range=\"1024 65535\"); closed connections hold their port in TIME_WAIT for 60 s (net.ipv4.tcp_tw_reuse=1 lets new connections to the same address reuse them)"}
	return f, note, true
}

// probeErr is the error of address i's first failed probe.
func probeErr(s *State, i int) error {
	for _, r := range s.Probes[i] {
		if !r.OK() && r.Err != nil {
			return unwrapProbe(r.Err)
		}
	}
	return nil
}

// describeHolders says "8 ESTABLISHED of client (pid 42), 2 TIME_WAIT".
func describeHolders(ss []sockets.Socket) string {
	type key struct {
		state sockets.State
		owner string
	}
	counts := map[key]int{}
	var keys []key
	for _, sk := range ss {
		k := key{state: sk.State}
		if len(sk.Processes) > 0 {
			k.owner = sk.Owner()
		}
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	slices.SortStableFunc(keys, func(a, b key) int { return cmp.Compare(counts[b], counts[a]) })
	var parts []string
	for _, k := range keys {
		p := fmt.Sprintf("%d %s", counts[k], k.state)
		if k.owner != "" {
			p += " of " + k.owner
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// netnsLabel names the namespace the probes run in for evidence: as the
// vantage names it, when the ladder runs from another one (RunFrom).
func (s *State) netnsLabel(ino uint64) string {
	if v := s.Options.Vantage; v != nil && v.Namespace.Inode == ino {
		return fmt.Sprintf("%s (net:[%d])", v.Short(), ino)
	}
	return netnsName(ino)
}

// netnsName names a network namespace by inode for evidence.
func netnsName(ino uint64) string {
	if ino == 0 {
		return "this network namespace"
	}
	return fmt.Sprintf("network namespace net:[%d]", ino)
}

func missingNote(ms []kstat.Missing) string {
	if len(ms) == 0 {
		return ""
	}
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s (%s)", m.What, m.Reason))
	}
	return "; not read: " + strings.Join(parts, ", ")
}
