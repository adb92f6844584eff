// Package scan runs TCP connect probes over many ports and hosts, fast and
// exactly. On Linux it drives non-blocking sockets from an epoll loop, so a
// result is decided from the kernel's answer (SYN-ACK, reset, ICMP) before any
// deadline is looked at; deadlines adapt per host from measured round trips,
// as nmap's do. Results use nmap's states (open, closed, filtered) with a
// reason, and a host that cannot be reached at all is reported once as
// host-unreachable or no-route instead of as thousands of filtered ports.
//
// Traps it avoids: a loopback connect that picks its own destination port as
// source port (self-connect) is not "open"; running out of file descriptors
// (EMFILE) or ephemeral ports slows the scan down and never makes a port
// "closed".
//
// # Host discovery
//
// With Options.Discover (reach scan does it unless --skip-discovery, like
// nmap without -Pn) a discovery phase first asks every target whether it is
// there, and the port scan then probes only what may be: hosts found up,
// and hosts discovery could not judge. The two overlap: hosts found up in
// discovery's first DiscoveryFloor are port-scanned while it waits out the
// silent ones. Options.HostsOnly (--hosts-only,
// nmap's -sn) stops after it. Every Host says how it was judged (JudgedBy)
// and why (Reason):
//
//	judged_by  reason                 how
//	arp        arp-response           an ARP reply (IPv4 on a directly connected segment)
//	nd         nd-response            a neighbour advertisement (IPv6, likewise)
//	echo       echo-reply             an ICMP echo reply
//	tcp        syn-ack / reset        a TCP ping to one of PingPorts: either answer means up
//	local      localhost-response     an address of this host
//	route      no-route               this host routes nothing there (a broadcast address)
//	arp, nd    no-response            down (host-unreachable): see the rule below
//	ports      syn-ack, conn-refused, the port scan judged: discovery was off or its
//	           host-unreach, ...      evidence thin; the port reasons apply
//
// The rule: discovery declares a host down only on evidence as strong as
// the kernel's own. That exists only on a directly connected segment, where
// no packet reaches a host that does not answer ARP or neighbour
// solicitation. There a host is down (host-unreachable, reason no-response)
// when all of these hold: it got every request (three when reach sends them
// itself), each request waited its full timeout, and at least one other host
// on the same segment answered in this discovery, so the segment works and
// its round-trip time is measured. Timeouts follow nmap: RFC 6298's srtt +
// 4·rttvar over the segment's answers, at least DiscoveryFloor, at most
// 250 ms (and 250 ms before any answer), doubling with each retransmission;
// so a segment that answers in a millisecond gives up on a silent address
// after 7·DiscoveryFloor (420 ms), and an answer to any of the requests
// counts until then. Without the privilege to send ARP/ND itself (AF_PACKET,
// raw ICMPv6), reach makes the kernel ask (a ping or a TCP connect) and
// reads its neighbour table: the same window and rule (entry still
// INCOMPLETE or FAILED at its end: down; confirmed: up, arp-response).
// The kernel's request is answered or not the same way; it is one request
// where reach sends three, so a lost ARP packet can cost a live host there.
//
// Everything else is thin evidence and never makes a host down; those hosts
// go to the port scan. A segment where nothing answered (so its round trip
// is unknown) or a router behind which nothing answered: their hosts wait
// DiscoveryWait, for the kernel's (or the router's) own verdict, as without
// discovery. A host behind a router that answers other hosts' pings, which
// got all three of its own pings unanswered (a firewall, pings to ports it
// does not serve, or nothing there): each probe of its ports waits as long
// as discovery's last ping did (240 ms on a fast path, at most Timeout),
// retried as usual; every port unanswered makes it no-answer.
// A host that answers late (within the window) or only on TCP is up as soon
// as anything answers.
package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reach-tools/reach/discover"
	"github.com/reach-tools/reach/internal/rtt"
	"github.com/reach-tools/reach/probe"
)

// State is a port's state, with nmap's meaning.
type State string

// Port states.
const (
	Open     State = "open"     // the handshake completed
	Closed   State = "closed"   // a reset or ICMP port-unreachable came back
	Filtered State = "filtered" // no answer, or an ICMP administratively-prohibited
)

// HostState says whether a host answered at all.
type HostState string

// Host states.
const (
	HostUp          HostState = "up"               // something answered
	HostNoAnswer    HostState = "no-answer"        // every probe went unanswered; the host may be down or drop everything
	HostUnreachable HostState = "host-unreachable" // no ARP/ND answer, or ICMP host-unreachable from a router
	HostNoRoute     HostState = "no-route"         // no route to the host (locally or ICMP net-unreachable)
	HostUnknown     HostState = "unknown"          // the scan was canceled before the host answered
	HostLocalError  HostState = "local-error"      // no probe left this host (a prohibit or blackhole route, a firewall rule); see the ports' reasons
)

// Reasons, in nmap's words where nmap has one.
const (
	ReasonSynAck          = "syn-ack"          // open: the handshake completed
	ReasonConnRefused     = "conn-refused"     // closed: a TCP reset
	ReasonPortUnreach     = "port-unreach"     // closed: ICMP port-unreachable
	ReasonSelfConnect     = "self-connect"     // closed: the kernel connected us to ourselves; nothing listens
	ReasonNoResponse      = "no-response"      // filtered: no answer before the deadline
	ReasonAdminProhibited = "admin-prohibited" // filtered: ICMP administratively prohibited (firewall REJECT)
	ReasonHostUnreach     = "host-unreach"     // ICMP host-unreachable (or no ARP/ND answer)
	ReasonNetUnreach      = "net-unreach"      // ICMP network-unreachable
	ReasonNoRoute         = "no-route"         // this host has no route to the target
	ReasonLocalProhibited = "local-prohibited" // this host's own firewall refused to send (EPERM/EACCES)
	ReasonLocalError      = "local-error"      // another error on this host
)

// Host reasons that only discovery gives (a host judged by its ports gets
// the reason of a port that answered: syn-ack, conn-refused, ...).
const (
	ReasonARPResponse = "arp-response"       // up: an ARP reply
	ReasonNDResponse  = "nd-response"        // up: a neighbour advertisement
	ReasonEchoReply   = "echo-reply"         // up: an ICMP echo reply
	ReasonReset       = "reset"              // up: a TCP ping was refused with a reset
	ReasonLocalhost   = "localhost-response" // up: an address of this host
)

// Method names the evidence that decided a host's state (Host.JudgedBy).
type Method string

// Methods.
const (
	ByARP   Method = "arp"   // ARP, on a directly connected IPv4 segment
	ByND    Method = "nd"    // neighbour discovery, on a directly connected IPv6 segment
	ByEcho  Method = "echo"  // ICMP echo
	ByTCP   Method = "tcp"   // a TCP ping to one of Options.PingPorts
	ByLocal Method = "local" // the address is this host's own
	ByRoute Method = "route" // this host's routes send nothing there (no route, a broadcast address)
	// ByPorts: the port scan judged the host, because discovery was off
	// or had only thin evidence (see the package doc).
	ByPorts Method = "ports"
)

// Port is the result for one port of one host.
type Port struct {
	Addr   netip.Addr    `json:"addr"`
	Port   uint16        `json:"port"`
	State  State         `json:"state"`
	Reason string        `json:"reason"`
	Class  probe.Class   `json:"class"`           // the probe vocabulary for the same outcome
	Errno  syscall.Errno `json:"errno,omitempty"` // the errno behind a failure, 0 if none
	From   netip.Addr    `json:"from,omitzero"`   // who sent the ICMP error, when one came
	RTT    time.Duration `json:"rtt_ns"`          // from the last connect to the answer (or deadline)
	Tries  int           `json:"tries"`           // connect attempts made
}

// Counts tallies ports by state.
type Counts struct {
	Open     int `json:"open"`
	Closed   int `json:"closed"`
	Filtered int `json:"filtered"`
}

func (c *Counts) add(s State) {
	switch s {
	case Open:
		c.Open++
	case Closed:
		c.Closed++
	case Filtered:
		c.Filtered++
	}
}

// Host is what the scan learnt about one host.
type Host struct {
	Addr     netip.Addr    `json:"addr"`
	Name     string        `json:"name,omitempty"` // the name the user gave, if any
	State    HostState     `json:"state"`
	Reason   string        `json:"reason,omitempty"`   // why it has its state; empty only for unknown
	JudgedBy Method        `json:"judged_by"`          // which evidence decided the state
	Evidence string        `json:"evidence,omitempty"` // what was seen, e.g. "ICMP host-unreachable from 198.18.0.1"
	MAC      string        `json:"mac,omitempty"`      // its link-layer address, when ARP or ND gave it
	SRTT     time.Duration `json:"srtt_ns"`            // smoothed round-trip time; 0 when nothing answered
	Counts   Counts        `json:"counts"`
	Ports    []Port        `json:"-"` // every decided port, in port order (none for an unreachable host)
}

// Report is the outcome of a scan.
type Report struct {
	Hosts   []Host        // in address order
	Ports   int           // ports per host
	Counts  Counts        // over all hosts
	Probes  int64         // connect attempts made
	Elapsed time.Duration //
	// Discovery is how long host discovery took; 0 when it was off.
	Discovery time.Duration
	// HostsOnly: the scan stopped after discovery (Options.HostsOnly);
	// Ports is 0 and no host has ports.
	HostsOnly bool
	Canceled  bool // the context ended the scan early; results are partial
}

// Target is a host to scan: an address and, when the user typed a name, that name.
type Target struct {
	Addr netip.Addr // an IPv4-mapped IPv6 address is scanned and reported as its IPv4 address
	Name string
}

// Progress is a snapshot of a running scan.
type Progress struct {
	Phase       Phase
	Done, Total int64         // hosts judged (discovery) or host×port pairs decided (ports), and in all
	Elapsed     time.Duration // since the phase began
}

// Phase names a part of the scan, for Progress.
type Phase string

// Phases, in the order they run.
const (
	PhaseDiscovery Phase = "discovery"
	PhasePorts     Phase = "ports"
)

// Defaults used when Options fields are zero.
const (
	DefaultTimeout       = time.Second
	DefaultMinTimeout    = 50 * time.Millisecond
	DefaultDiscoveryWait = 4 * time.Second
	DefaultRetries       = 1
	// DiscoveryFloor is the shortest wait for a discovery answer, however
	// fast the segment answers.
	DiscoveryFloor = discover.DefaultFloor
	// DiscoveryTries is how many requests a silent address gets before
	// discovery judges it (see the package doc).
	DiscoveryTries = discover.DefaultTries
	MaxConcurrency = 16384
	MaxRetryLimit  = 254 // the most retries a port gets, whatever MaxRetries asks
)

// DefaultPingPorts are the ports of discovery's TCP pings: nmap's 80 and 443
// (an unprivileged nmap's ping), and 22.
var DefaultPingPorts = discover.DefaultPingPorts

// Options tune a scan. The zero value of each field picks a sensible default,
// except Discover: the library scans every target's ports unless asked.
type Options struct {
	// Ports to probe on every host; required unless HostsOnly.
	Ports []uint16
	// Discover runs host discovery first (see the package doc), so the
	// ports of hosts found down are not probed.
	Discover bool
	// HostsOnly runs discovery and stops (nmap -sn); Ports is ignored. A
	// host discovery could not judge is reported no-answer, reason
	// no-response, judged by the method that got no answer.
	HostsOnly bool
	// PingPorts are discovery's TCP ping ports; nil means DefaultPingPorts.
	PingPorts []uint16
	// MaxProbes refuses, before anything is sent, a scan of more host×port
	// pairs (a *SizeError): 0 means DefaultMaxProbes, negative no limit.
	MaxProbes int64
	// Concurrency caps connects in flight; 0 sizes it from RLIMIT_NOFILE
	// (raising the soft limit to the hard one, keeping a reserve), at most
	// MaxConcurrency.
	Concurrency int
	// Workers is the number of event loops; 0 means one per CPU.
	Workers int
	// Rate caps new connects per second; 0 means no cap.
	Rate float64
	// MaxRetries is how often a port that got no answer is tried again.
	// 0 means DefaultRetries; negative means never; at most MaxRetryLimit.
	// Ports that answered (open, closed, prohibited) are never retried.
	MaxRetries int
	// Timeout is how long a probe waits before a host's round-trip time is
	// known, and the ceiling of the adaptive deadline (srtt + 4·rttvar, at
	// least MinTimeout). 0 means DefaultTimeout.
	Timeout    time.Duration
	MinTimeout time.Duration // 0 means DefaultMinTimeout (capped at Timeout)
	// DiscoveryWait is how long probes to a host that has not answered yet
	// wait, so that a host absent from its link is reported host-unreachable
	// (Linux gives up ARP/ND after 3 s) instead of filtered. 0 means
	// DefaultDiscoveryWait.
	DiscoveryWait time.Duration
	// OnPort, when set, gets every decided port as it is decided; OnHost gets
	// every host found unreachable. Calls are serialized; keep them short.
	OnPort func(Port)
	OnHost func(Host)
	// Progress, when set, is called about five times a second.
	Progress func(Progress)
	// Source, when valid, is the address every probe leaves from (bound
	// before connect; the kernel picks the ports). Every target must be of
	// its family, and it must be an address of this host.
	Source netip.Addr
	// Interface, when set, makes every probe leave by that network
	// interface (SO_BINDTODEVICE), whatever the routes prefer.
	Interface string
	// Engine chooses how connects run: EngineDefault (epoll on Linux,
	// portable elsewhere), EngineEpoll or EnginePortable.
	Engine Engine
	// RunIn, when set, runs each event loop (each goroutine of the portable
	// engine); the loop creates its sockets
	// inside it. Tests pass a network namespace's Do.
	RunIn  func(func() error) error
	Logger *slog.Logger
}

// Errors.
var (
	ErrNoPorts      = errors.New("scan: no ports to scan")
	ErrNoTargets    = errors.New("scan: no hosts to scan")
	ErrUnsupported  = errors.New("scan: the epoll engine needs Linux (use the portable engine)")
	ErrOutOfSockets = errors.New("scan: could not create sockets")
	// ErrTooBig, ErrZone and ErrExcludeName are targets Expand refuses:
	// user input to fix.
	ErrTooBig      = errors.New("scan: too many hosts")
	ErrZone        = errors.New("scan: missing or unknown IPv6 zone")
	ErrExcludeName = errors.New("scan: a name cannot be excluded")
)

// ResourceError says the scan stopped because this host ran out of file
// descriptors or ports for longer than the scan would wait.
type ResourceError struct {
	Errno syscall.Errno
	Wait  time.Duration
}

func (e *ResourceError) Error() string {
	return fmt.Sprintf("%v: %v for %v with no connection in flight; raise the open-file limit (ulimit -n) or close other programs' sockets", ErrOutOfSockets, e.Errno, e.Wait)
}

func (e *ResourceError) Unwrap() []error { return []error{ErrOutOfSockets, e.Errno} }

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinTimeout <= 0 {
		o.MinTimeout = DefaultMinTimeout
	}
	o.MinTimeout = min(o.MinTimeout, o.Timeout)
	if o.DiscoveryWait <= 0 {
		o.DiscoveryWait = DefaultDiscoveryWait
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	// A port's try count is a byte; more would wrap it and retry forever.
	o.MaxRetries = min(o.MaxRetries, MaxRetryLimit)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RunIn == nil {
		o.RunIn = func(f func() error) error { return f() }
	}
	return o
}

// Scan probes every port in opt.Ports on every target, each address once.
// It returns what it found even when ctx ends the scan early (then
// Report.Canceled is set and the error is ctx's).
func Scan(ctx context.Context, targets []Target, opt Options) (*Report, error) {
	if len(opt.Ports) == 0 && !opt.HostsOnly {
		return nil, ErrNoPorts
	}
	if len(targets) == 0 {
		return nil, ErrNoTargets
	}
	if !opt.HostsOnly { // which scans no ports, whatever opt.Ports holds
		if err := checkSize(targets, opt.Ports, opt.MaxProbes); err != nil {
			return nil, err
		}
	}
	opt = opt.withDefaults()
	if opt.Discover && runtime.GOOS != "linux" {
		// Discovery asks by ARP, ND and raw ICMP, which reach does on
		// Linux only: elsewhere the ports judge each host, as with -Pn.
		opt.Logger.Debug("scan: host discovery needs Linux; the port scan judges the hosts")
		opt.Discover = false
	}
	if err := checkLocal(targets, opt); err != nil {
		return nil, err
	}
	start := time.Now()
	var rep *Report
	var err error
	switch {
	case opt.HostsOnly:
		var d *discovery
		if d, err = discoverHosts(ctx, targets, opt, nil); err != nil && ctx.Err() == nil {
			return nil, err
		}
		rep, err = d.report(targets, time.Since(start), true), nil
	case opt.Discover:
		if rep, err = discoverAndScan(ctx, targets, opt, start); rep == nil {
			return nil, err
		}
	default:
		e := newEngine(targets, opt)
		e.start = start
		stop := e.reportProgress()
		err = run(ctx, e)
		stop()
		rep = e.report(time.Since(start))
	}
	if ctx.Err() != nil {
		rep.Canceled = true
		return rep, ctx.Err()
	}
	return rep, err
}

// checkLocal refuses, before any probe, a source or interface that every
// probe would fail on: a *probe.SourceError (not an address of this host,
// or not of a target's family) or a *probe.InterfaceError.
func checkLocal(targets []Target, opt Options) error {
	if !opt.Source.IsValid() && opt.Interface == "" {
		return nil
	}
	if src := opt.Source.Unmap(); src.IsValid() {
		for _, t := range targets {
			if t.Addr.Unmap().Is4() != src.Is4() {
				return &probe.SourceError{Source: opt.Source, Target: t.Addr, Err: probe.ErrSourceFamily}
			}
		}
	}
	return opt.RunIn(func() error {
		return probe.CheckLocal(probe.Options{Source: opt.Source, Interface: opt.Interface})
	})
}

// Host status, kept in hostState.status.
const (
	statusUnconfirmed int32 = iota // nothing answered yet
	statusUp                       // something answered
	statusSilent                   // a probe waited DiscoveryWait and nothing came back
	statusDown                     // host-level failure; its ports are not probed further
)

// hostState is one target's shared state; workers on any thread touch it.
type hostState struct {
	Target
	status    atomic.Int32
	timeoutNs atomic.Int64     // the current probe deadline
	slow      atomic.Bool      // a loopback connect outlasted its wait: probe without blocking
	scope     uint32           // the IPv6 zone's interface index; see lookupScopes
	found     *discover.Result // discovery's verdict, when it ran
	// silentWait, when set, replaces Timeout as the wait of a silent
	// host's probes (see discovery.prime).
	silentWait time.Duration
	mu         sync.Mutex // guards rtt and down
	rtt        rtt.Estimator
	down       Host     // the host-level verdict, once statusDown
	results    []result // by index into engine.ports; allocated with the first result
	decided    int      // results set
	counts     Counts
}

type engine struct {
	opt   Options
	start time.Time
	hosts []*hostState // shuffled: the scan order across hosts
	ports []uint16     // sorted, without duplicates
	order []uint16     // indexes into ports, shuffled: the scan order across ports
	total int64
	next  atomic.Int64 // the next item to hand out
	done  atomic.Int64 // items decided (or skipped for a down host)
	tries atomic.Int64

	mu     sync.Mutex // serializes results and callbacks
	scopes sync.Once  // lookupScopes
}

// lookupScopes finds the interface index of every zoned host once, from
// inside RunIn where the zones' interfaces are; a lookup per connect dumped
// every interface each time (a full link-local scan took 4.5 times longer).
func (e *engine) lookupScopes() {
	for _, h := range e.hosts {
		if z := h.Addr.Zone(); z != "" {
			h.scope = zoneID(z)
		}
	}
}

func newEngine(targets []Target, opt Options) *engine {
	e := &engine{opt: opt}
	seen := make(map[netip.Addr]bool, len(targets))
	for _, t := range targets {
		t.Addr = t.Addr.Unmap()
		if seen[t.Addr] {
			continue // the first name given for an address stays
		}
		seen[t.Addr] = true
		h := &hostState{Target: t}
		h.timeoutNs.Store(int64(opt.DiscoveryWait))
		e.hosts = append(e.hosts, h)
	}
	e.ports = slices.Compact(slices.Sorted(slices.Values(opt.Ports)))
	e.order = make([]uint16, len(e.ports))
	for i := range e.order {
		e.order[i] = uint16(i)
	}
	rand.Shuffle(len(e.hosts), func(i, j int) { e.hosts[i], e.hosts[j] = e.hosts[j], e.hosts[i] })
	rand.Shuffle(len(e.order), func(i, j int) { e.order[i], e.order[j] = e.order[j], e.order[i] })
	e.total = int64(len(e.hosts)) * int64(len(e.ports))
	return e
}

// item names one host×port pair by index into e.hosts and e.ports.
type item struct {
	host  int32
	idx   uint16 // index into e.ports
	port  uint16 // the port number itself
	tries uint8  // attempts already made
}

// takeChunk is how many pairs a loop takes at once from the shared list.
const takeChunk = 32

// take hands out the next pairs into buf. Consecutive pairs go to different
// hosts, so no host sees a burst while others wait.
func (e *engine) take(buf []item) []item { return e.takeN(buf, takeChunk) }

// takeN hands out the next chunk pairs into buf.
func (e *engine) takeN(buf []item, chunk int64) []item {
	i := e.next.Add(chunk) - chunk
	n := int64(len(e.hosts))
	for end := min(i+chunk, e.total); i < end; i++ {
		idx := e.order[i/n]
		buf = append(buf, item{host: int32(i % n), idx: idx, port: e.ports[idx]})
	}
	return buf
}

func (e *engine) timeout(h *hostState) time.Duration { return time.Duration(h.timeoutNs.Load()) }

// answered records that h answered after rtt, which also confirms it is up.
func (e *engine) answered(h *hostState, rtt time.Duration) {
	if h.status.Load() != statusUp {
		h.mu.Lock()
	} else if !h.mu.TryLock() {
		return // another loop is updating this host; one sample fewer is harmless
	}
	h.rtt.Update(rtt)
	t := h.rtt.Timeout(e.opt.MinTimeout, e.opt.Timeout)
	h.mu.Unlock()
	// A host already reported down stays down.
	if h.status.CompareAndSwap(statusUnconfirmed, statusUp) || h.status.CompareAndSwap(statusSilent, statusUp) || h.status.Load() == statusUp {
		h.timeoutNs.Store(int64(t))
	}
}

// silent marks a host that let a probe wait DiscoveryWait (or its primed
// wait) without any error: it exists or is behind a router that drops; its
// ports are filtered.
func (e *engine) silent(h *hostState) {
	if h.status.CompareAndSwap(statusUnconfirmed, statusSilent) {
		t := e.opt.Timeout
		if h.silentWait > 0 {
			t = h.silentWait
		}
		h.timeoutNs.Store(int64(t))
	}
}

// hostDown records a host-level verdict and reports whether it was taken:
// a host that already answered stays up, and the caller reports the port.
func (e *engine) hostDown(h *hostState, v verdict) bool {
	if !h.status.CompareAndSwap(statusUnconfirmed, statusDown) {
		return h.status.Load() == statusDown
	}
	h.mu.Lock()
	h.down = Host{Addr: h.Addr, Name: h.Name, State: v.host, Reason: v.reason, JudgedBy: ByPorts, Evidence: v.evidence}
	down := h.down
	h.mu.Unlock()
	e.opt.Logger.Debug("scan: host down", "addr", h.Addr, "state", v.host, "evidence", v.evidence)
	if e.opt.OnHost != nil {
		e.mu.Lock()
		e.opt.OnHost(down)
		e.mu.Unlock()
	}
	return true
}

// batch collects one event loop's results and hands them to the engine a
// few hundred at a time, so loops on different CPUs rarely contend.
type batch struct {
	e     *engine
	ports []decided
	done  int64 // pairs settled without a port result (host down)
}

type decided struct {
	h   *hostState
	idx uint16
	r   result
}

const batchSize = 256

// skip counts a pair of a host already reported down.
func (b *batch) skip() { b.done++ }

func (b *batch) port(h *hostState, idx uint16, r result) {
	b.ports = append(b.ports, decided{h, idx, r})
	if len(b.ports) >= batchSize {
		b.flush()
	}
}

// flush records the collected results; OnPort sees them in order.
func (b *batch) flush() {
	if len(b.ports) == 0 && b.done == 0 {
		return
	}
	e := b.e
	e.mu.Lock()
	for _, d := range b.ports {
		h := d.h
		if h.results == nil {
			h.results = make([]result, len(e.ports))
		}
		h.results[d.idx] = d.r
		h.decided++
		h.counts.add(states[d.r.state])
		if e.opt.OnPort != nil {
			e.opt.OnPort(d.r.port(h.Addr, e.ports[d.idx]))
		}
	}
	e.mu.Unlock()
	e.done.Add(int64(len(b.ports)) + b.done)
	clear(b.ports)
	b.ports, b.done = b.ports[:0], 0
}

// decide turns a verdict about one probe into a port result or a host-level one.
func (b *batch) decide(h *hostState, it item, v verdict, rtt time.Duration) {
	e := b.e
	if v.host != "" {
		if e.hostDown(h, v) {
			b.skip()
			return
		}
		v = v.asPort()
	}
	if v.answered {
		e.answered(h, rtt)
	}
	b.port(h, it.idx, newResult(v, rtt, it.tries))
}

// retry reports whether an unanswered probe should be tried again.
func (e *engine) retry(it item) bool { return int(it.tries) < e.opt.MaxRetries }

func (e *engine) reportProgress() (stop func()) {
	if e.opt.Progress == nil {
		return func() {}
	}
	return every(200*time.Millisecond, func() {
		e.opt.Progress(Progress{Phase: PhasePorts, Done: e.done.Load(), Total: e.total, Elapsed: time.Since(e.start)})
	})
}

// every calls f every d on a goroutine of its own until stop is called;
// stop returns when f no longer runs.
func every(d time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (e *engine) report(elapsed time.Duration) *Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &Report{Ports: len(e.ports), Probes: e.tries.Load(), Elapsed: elapsed}
	for _, h := range e.hosts {
		h.mu.Lock()
		out := Host{Addr: h.Addr, Name: h.Name, SRTT: h.rtt.SRTT(), Counts: h.counts, Ports: h.ports(e.ports)}
		switch h.status.Load() {
		case statusDown:
			out = h.down
		case statusUp:
			out.State = HostUp
		case statusSilent:
			out.State = HostNoAnswer
		default:
			out.State = HostUnknown
			switch {
			case h.decided == len(e.ports) && h.refusedHere():
				out.State = HostLocalError
			case h.counts.Filtered == len(e.ports):
				out.State = HostNoAnswer
			}
		}
		h.mu.Unlock()
		out.JudgedBy = ByPorts
		if out.Reason == "" {
			out.Reason = portsReason(out)
		}
		if f := h.found; f != nil {
			out = withDiscovery(out, *f)
		}
		r.Counts.Open += out.Counts.Open
		r.Counts.Closed += out.Counts.Closed
		r.Counts.Filtered += out.Counts.Filtered
		r.Hosts = append(r.Hosts, out)
	}
	slices.SortFunc(r.Hosts, func(a, b Host) int { return a.Addr.Compare(b.Addr) })
	return r
}

// portsReason is the reason of a host the port scan judged: the best answer
// one of its ports gave (syn-ack, then a reset, then any other), or
// no-response when none answered.
func portsReason(h Host) string {
	if h.State == HostUnknown {
		return ""
	}
	best := ""
	rank := func(r string) int {
		switch r {
		case ReasonSynAck:
			return 3
		case ReasonConnRefused, ReasonSelfConnect:
			return 2
		case ReasonNoResponse, "":
			return 0
		}
		return 1
	}
	for _, p := range h.Ports {
		if rank(p.Reason) > rank(best) {
			best = p.Reason
		}
	}
	if best == "" {
		return ReasonNoResponse
	}
	return best
}

// refusedHere reports whether every decided port failed on this host,
// before a packet left.
func (h *hostState) refusedHere() bool {
	local := []uint8{indexOf(reasons, ReasonLocalProhibited), indexOf(reasons, ReasonLocalError)}
	for _, r := range h.results {
		if r.state != 0 && !slices.Contains(local, r.why) {
			return false
		}
	}
	return true
}

// ports builds the public form of the host's results, in port order.
func (h *hostState) ports(numbers []uint16) []Port {
	if h.decided == 0 {
		return nil
	}
	out := make([]Port, 0, h.decided)
	for i, r := range h.results {
		if r.state != 0 {
			out = append(out, r.port(h.Addr, numbers[i]))
		}
	}
	return out
}

// result is one port's outcome as the engine keeps it until the report:
// 32 bytes without pointers. A full-range scan's 65,535 of them are 2 MB
// that the garbage collector never scans, placed by port so nothing is
// sorted. (Kept as []Port they were 8 MB of pointers that the collector
// read before the workers wrote them: a copy-on-write fault and a TLB
// shootdown per page, stealing time from both event loops.)
type result struct {
	rtt   time.Duration
	from  [16]byte // the ICMP error's sender, if fromV is set
	errno uint16
	state uint8 // index into states; 0 while undecided
	why   uint8 // index into reasons
	class uint8 // index into classes
	tries uint8
	fromV uint8 // 4 or 6: the family of from; 0: no sender
}

// states, reasons and classes a result can name; index 0 means none.
var (
	states  = []State{"", Open, Closed, Filtered}
	reasons = []string{"", ReasonSynAck, ReasonConnRefused, ReasonPortUnreach, ReasonSelfConnect, ReasonNoResponse,
		ReasonAdminProhibited, ReasonHostUnreach, ReasonNetUnreach, ReasonNoRoute, ReasonLocalProhibited, ReasonLocalError}
	classes = append([]probe.Class{""}, probe.Classes...)
)

// indexOf finds v in list, 0 if absent; classify only uses listed values,
// and TestResultKeepsVerdict holds it to that.
func indexOf[T comparable](list []T, v T) uint8 {
	for i, x := range list {
		if x == v {
			return uint8(i)
		}
	}
	return 0
}

func newResult(v verdict, rtt time.Duration, tries uint8) result {
	r := result{rtt: rtt, errno: uint16(v.errno), state: indexOf(states, v.state), why: indexOf(reasons, v.reason),
		class: indexOf(classes, v.class), tries: min(tries, 254) + 1}
	if v.from.IsValid() {
		r.from, r.fromV = v.from.As16(), 6
		if v.from.Is4() {
			r.fromV = 4
		}
	}
	return r
}

func (r result) port(addr netip.Addr, number uint16) Port {
	p := Port{Addr: addr, Port: number, State: states[r.state], Reason: reasons[r.why], Class: classes[r.class],
		Errno: syscall.Errno(r.errno), RTT: r.rtt, Tries: int(r.tries)}
	switch r.fromV {
	case 4:
		p.From = netip.AddrFrom16(r.from).Unmap()
	case 6:
		p.From = netip.AddrFrom16(r.from)
	}
	return p
}
