package doctor

import (
	"context"
	"net/netip"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/kstat"
	"github.com/reach-tools/reach/probe"
)

// State is the evidence of one run. Each field after Options is written by
// the one check named in its comment; Run hands a check only the evidence
// of the checks it reads (see Check), and keeps what it wrote of its own.
type State struct {
	Target  endpoint.Endpoint
	Options Options

	Addrs    []netip.Addr  // dns: every address to probe
	Lookup   time.Duration // dns
	LookupOK bool          // dns: a name resolved, or the host is a literal

	Probes [][]probe.Result // tcp: per address, the repeated probes
	// Hold is one connection held while the later stages run, to catch a
	// server that accepts and then drops it.
	Hold   *heldProbe    // tcp
	Routes []RouteInfo   // route: per address
	Echo   []EchoInfo    // icmp: per address
	Local  []bool        // host: per address, whether it is this host
	Client *HostEvidence // host: this host's firewall, for outgoing rules
	// Hosts holds, per address, the evidence of the host that has it: this
	// host's, or the answer of the agent there; nil where none was seen.
	Hosts []*HostEvidence // host
	// Agents holds, per address, why the agent asked about it gave no
	// evidence; nil where it answered or none was asked.
	Agents []*AgentError // host
	Path   [][]sys.Hop   // path: per address, for timeouts and unreachables
	// Before is the kernel's counters of the namespace the probes run in,
	// read before they start.
	Before *kstat.Snapshot // counters
	// AgentBefore holds, per address of another host, its agent's kernel
	// counters read as the probes started; nil where none was asked.
	AgentBefore []*kstat.Snapshot // agent-counters
	// Kernel is what those counters counted over the probes.
	Kernel *kstat.Delta // kernel
	// Paths holds, per address, where the target host's nat rules and
	// proxies send the connection.
	Paths [][]Path // nat
	// Layers holds, per address that connected, the probe of the layers
	// above TCP the target asks for; nil elsewhere.
	Layers []*probe.Result // layers

	// bg outlives the stages: what a check leaves running (the hold) runs
	// in it, and Run waits for it before the diagnosis.
	bg context.Context
}

// take copies into s the evidence check name stored in from: the fields
// whose comment names it.
func (s *State) take(name string, from *State) {
	switch name {
	case "dns":
		s.Addrs, s.Lookup, s.LookupOK = from.Addrs, from.Lookup, from.LookupOK
	case "tcp":
		s.Probes, s.Hold = from.Probes, from.Hold
	case "route":
		s.Routes = from.Routes
	case "icmp":
		s.Echo = from.Echo
	case "host":
		s.Local, s.Client, s.Hosts, s.Agents = from.Local, from.Client, from.Hosts, from.Agents
	case "path":
		s.Path = from.Path
	case "counters":
		s.Before = from.Before
	case "agent-counters":
		s.AgentBefore = from.AgentBefore
	case "kernel":
		s.Kernel = from.Kernel
	case "nat":
		s.Paths = from.Paths
	case "layers":
		s.Layers = from.Layers
	}
}

// view is the State a check reading the evidence of the checks named in
// reads runs on: the target, the options and that evidence only.
func (s *State) view(reads []string) *State {
	v := &State{Target: s.Target, Options: s.Options, bg: s.bg}
	for _, name := range reads {
		v.take(name, s)
	}
	return v
}

// RouteInfo is the route check's view of one address.
type RouteInfo struct {
	Route sys.Route
	Dev   string // the outgoing interface's name, when known
	Err   error
}

// EchoInfo is the ICMP check's view of one address.
type EchoInfo struct {
	Socket  string // "unprivileged ICMP socket" or "raw socket"
	Replied bool
	RTT     time.Duration
	Skipped string // why no echo was sent
	Err     error
}

// needAddrs skips a check when the dns check left no address.
func needAddrs(s *State) (CheckResult, bool) {
	if len(s.Addrs) == 0 {
		return CheckResult{Status: Skip, Detail: "no address to look at: the name did not resolve"}, false
	}
	return CheckResult{}, true
}

// addrPort is address i with the target's port (dns).
func (s *State) addrPort(i int) netip.AddrPort { return netip.AddrPortFrom(s.Addrs[i], s.Target.Port) }

// label names address i in findings when the target has several (dns).
func (s *State) label(i int) string {
	if len(s.Addrs) > 1 {
		return s.addrPort(i).String()
	}
	return ""
}

// prefix is label(i) followed by ": ", or "" when there is one address:
// how a check's detail names the address it speaks of.
func (s *State) prefix(i int) string {
	if l := s.label(i); l != "" {
		return l + ": "
	}
	return ""
}

// Primary returns the class of address i (tcp): the first probe's class,
// or the class of the failures when probes disagree.
func (s *State) Primary(i int) probe.Class {
	if i >= len(s.Probes) || len(s.Probes[i]) == 0 {
		return ""
	}
	for _, r := range s.Probes[i] {
		if !r.OK() {
			return r.Class
		}
	}
	return probe.Open
}

// host returns the evidence of address i's host (host), nil when none was
// seen.
func (s *State) host(i int) *HostEvidence {
	if i < len(s.Hosts) {
		return s.Hosts[i]
	}
	return nil
}
