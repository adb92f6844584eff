// Package doctor explains why a TCP endpoint cannot be reached. It walks a
// ladder of checks (name resolution, route, TCP probes, ICMP echo, the
// target host's sockets and firewall, the path), each of which reports what
// it looked at, and turns the evidence into findings: an issue, the evidence
// for it and a fix, each with a stable cause id (see Cause).
//
// Local evidence (sockets, processes, firewall rules) exists only when the
// target is this host, or when a RemoteEvidence source (an agent on the
// target host) can be asked. Without it the doctor does not pretend: it
// lists the possible causes in order of likelihood and says what would tell
// them apart.
package doctor

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// Cause is a stable id naming why an endpoint is (not) reachable; scripts
// match on it in --json output.
type Cause string

// The causes the doctor can name.
const (
	NotListening          Cause = "not-listening"
	WrongPort             Cause = "wrong-port"
	LoopbackOnly          Cause = "loopback-only"
	AddressFamilyMismatch Cause = "address-family-mismatch"
	FirewallDrop          Cause = "firewall-drop"
	FirewallReject        Cause = "firewall-reject"
	HostDown              Cause = "host-down"
	NoRoute               Cause = "no-route"
	DNS                   Cause = "dns"
	Overloaded            Cause = "overloaded"
	ServerHung            Cause = "server-hung"
	ResetByPeer           Cause = "reset-by-peer"
	ClosedByPeer          Cause = "closed-by-peer"
	LocalError            Cause = "local-error"
	Reachable             Cause = "reachable"
	Unknown               Cause = "unknown" // cancelled, or nothing explains what was seen
)

// Confidence says how a finding is known.
type Confidence string

const (
	// Confirmed findings rest on evidence that names the cause: a socket
	// table, a firewall rule, an errno that has one meaning.
	Confirmed Confidence = "confirmed"
	// Likely findings are the most probable explanation of what the client saw.
	Likely Confidence = "likely"
	// Possible findings are other explanations of the same symptom.
	Possible Confidence = "possible"
)

// Finding is one row of the report's Issue / Evidence / Fix table.
type Finding struct {
	Cause      Cause      `json:"cause"`
	Confidence Confidence `json:"confidence"`
	Issue      string     `json:"issue"`
	Evidence   string     `json:"evidence"`
	Fix        string     `json:"fix"`
	Addr       string     `json:"addr,omitempty"` // the address it concerns, when the target has several
}

// Status is how a check ended.
type Status string

const (
	Pass  Status = "pass"  // looked and found nothing wrong
	Fail  Status = "fail"  // found a problem
	Info  Status = "info"  // looked; what it saw is context, not a verdict
	Skip  Status = "skip"  // did not apply or could not run here; Detail says why
	Error Status = "error" // the check itself failed; Detail says how
)

// CheckResult is what a check returns.
type CheckResult struct {
	Status   Status
	Detail   string    // what it looked at and what it saw, one line
	Findings []Finding // what it concluded, if anything
}

// CheckRecord is one rung of the ladder as the report shows it.
type CheckRecord struct {
	Name       string  `json:"name"`
	Status     Status  `json:"status"`
	Detail     string  `json:"detail"`
	DurationMS float64 `json:"duration_ms"`
}

// Check is one rung of the ladder. Run reads what earlier stages stored in
// the State and stores its own evidence there (each check owns its fields,
// so checks of one stage can run concurrently).
type Check interface {
	Name() string
	Run(ctx context.Context, s *State) CheckResult
}

// CheckFunc adapts a function to a Check.
type CheckFunc struct {
	CheckName string
	Fn        func(ctx context.Context, s *State) CheckResult
}

func (c CheckFunc) Name() string                                  { return c.CheckName }
func (c CheckFunc) Run(ctx context.Context, s *State) CheckResult { return c.Fn(ctx, s) }

// Stage is a set of independent checks, run concurrently. Stages run in order.
type Stage []Check

// DefaultLadder is the ladder Run walks when Options.Ladder is nil.
func DefaultLadder() []Stage {
	return []Stage{
		{DNSCheck},
		{TCPCheck, RouteCheck, ICMPCheck, HostCheck},
		{SocketsCheck, FirewallCheck, PathCheck},
	}
}

// SocketSource lists a host's listening sockets and addresses; the sockets
// package is the default.
type SocketSource interface {
	// Listening returns the listening sockets whose local port keep
	// accepts (nil: all of them).
	Listening(ctx context.Context, keep func(port uint16) bool) ([]sockets.Socket, error)
	Addresses() ([]netip.Prefix, error)
}

// FirewallSource reads a host's firewall rules, every table; the Ruleset's
// notes say what could not be read. firewall.Commands is the default.
type FirewallSource interface {
	Read(ctx context.Context) (*firewall.Ruleset, error)
}

// HostEvidence is what a host knows about a port: its addresses, listening
// sockets and firewall rules.
type HostEvidence struct {
	Host      string           `json:"host"` // "this host", or who answered
	Addresses []netip.Prefix   `json:"addresses"`
	Listening []sockets.Socket `json:"listening"` // every listening socket, for nearby ports
	Firewall  bool             `json:"firewall"`  // whether its firewall rules could be read
	Rules     []firewall.Rule  `json:"rules,omitempty"`
	Notes     []string         `json:"notes,omitempty"` // what could not be seen, and why
}

// RemoteEvidence asks the target host itself (an agent there) what it sees
// for a port. Nil means only the client's view is available. The doctor asks
// it once for each address of the target that is not this host's,
// concurrently; an error that is (or wraps) an *AgentError says why that
// agent gave nothing, so the report can say what to do.
type RemoteEvidence interface {
	Evidence(ctx context.Context, addr netip.AddrPort) (HostEvidence, error)
}

// Options configure Run. The zero value probes with probe.DefaultTimeout
// through the system resolver and reads this host's sockets and firewall.
type Options struct {
	// Timeout bounds name resolution (the first stage) and each probe;
	// the stages after resolution take at most about 1.15 times as long
	// together. Zero means probe.DefaultTimeout.
	Timeout time.Duration
	// Network is "tcp" (default), "tcp4" or "tcp6".
	Network string
	// Dial and Resolver are passed to the probes; nil uses the defaults.
	Dial     probe.DialFunc
	Resolver *net.Resolver
	// Enter runs fn where local evidence lives: sockets, routes, firewall
	// rules and ICMP are read inside it. Tests pass a network namespace's
	// Do; nil calls fn directly.
	Enter func(fn func() error) error
	// Sockets and Firewall read local evidence; nil uses the sockets
	// package and the nft / iptables-save commands.
	Sockets  SocketSource
	Firewall FirewallSource
	// Remote, when set, is asked for evidence when the target is another host.
	Remote RemoteEvidence
	// Probes is how many TCP probes tell a steady failure from an
	// intermittent one; zero means 3.
	Probes int
	// Ladder replaces DefaultLadder.
	Ladder []Stage
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return probe.DefaultTimeout
}

func (o *Options) enter(fn func() error) error {
	if o.Enter == nil {
		return fn()
	}
	return o.Enter(fn)
}

// State is the evidence the checks share. Each field is written by the one
// check named in its comment and read by later stages.
type State struct {
	Target  endpoint.Endpoint
	Options Options

	Addrs    []netip.Addr  // dns: every address to probe
	Lookup   time.Duration // dns
	LookupOK bool          // dns: a name resolved, or the host is a literal

	Probes [][]probe.Result // tcp: per address, the repeated probes
	Routes []RouteInfo      // route: per address
	Echo   []EchoInfo       // icmp: per address
	Local  []bool           // host: per address, whether it is this host
	Client *HostEvidence    // host: this host's firewall, for outgoing rules
	Path   [][]sys.Hop      // path: per address, for timeouts and unreachables
	// Hosts holds, per address, the evidence of the host that has it: this
	// host's, or the answer of the agent there; nil where none was seen.
	Hosts []*HostEvidence // host
	// Agents holds, per address, why the agent asked about it gave no
	// evidence; nil where it answered or none was asked.
	Agents []*AgentError // host
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

// Primary returns the class of address i: the first probe's class, or the
// class of the failures when probes disagree.
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

// Report is the doctor's answer.
type Report struct {
	Target     string        `json:"target"`
	Reachable  bool          `json:"reachable"`
	Class      probe.Class   `json:"class"`
	Cause      Cause         `json:"cause"`
	Confidence Confidence    `json:"confidence"`
	Verdict    string        `json:"verdict"`
	Addresses  []AddrReport  `json:"addresses"`
	Findings   []Finding     `json:"findings"`
	Checks     []CheckRecord `json:"checks"`
	Next       []string      `json:"next,omitempty"` // what would tell possible causes apart
	DurationMS float64       `json:"duration_ms"`
}

// AddrReport is the outcome for one address of the target.
type AddrReport struct {
	Addr   string      `json:"addr"`
	Class  probe.Class `json:"class"`
	RTTMS  float64     `json:"rtt_ms"`
	Probes []string    `json:"probes"` // class of each repeated probe
	// Intermittent is set when the probes disagree: the endpoint flaps.
	Intermittent bool `json:"intermittent,omitempty"`
	// Evidence says whose server-side view (sockets, firewall) covers the
	// address, or why the agent asked about it gave none; absent when
	// nobody could be asked.
	Evidence *EvidenceSource `json:"evidence,omitempty"`
}

// EvidenceSource is where an address's server-side evidence came from.
type EvidenceSource struct {
	// From is "this host", or the agent that answered or was asked.
	From string `json:"from"`
	// Failure, Error and Fix are set when the agent gave no evidence.
	Failure AgentFailure `json:"failure,omitempty"`
	Error   string       `json:"error,omitempty"`
	Fix     string       `json:"fix,omitempty"`
}

// Run diagnoses ep and returns the report. It never fails: a check that
// cannot run says so in its record.
func Run(ctx context.Context, ep endpoint.Endpoint, opt Options) *Report {
	start := time.Now()
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The first stage (name resolution) may take Timeout; the stages after
	// it share Timeout plus 15%: probes take Timeout, the rest gets a
	// bounded share more. So a slow lookup does not starve the probes.
	var rest time.Time
	stageCtx := func(n int) (context.Context, context.CancelFunc) {
		if n == 0 {
			return context.WithTimeout(ctx, opt.timeout())
		}
		if rest.IsZero() {
			rest = time.Now().Add(opt.timeout() + opt.timeout()*3/20)
		}
		return context.WithDeadline(ctx, rest)
	}
	s := &State{Target: ep, Options: opt}
	ladder := opt.Ladder
	if ladder == nil {
		ladder = DefaultLadder()
	}
	var records []CheckRecord
	var findings []Finding
	for n, stage := range ladder {
		sctx, cancel := stageCtx(n)
		results := make([]CheckResult, len(stage))
		took := make([]time.Duration, len(stage))
		each(len(stage), func(i int) {
			t0 := time.Now()
			results[i] = stage[i].Run(sctx, s)
			took[i] = time.Since(t0)
		})
		cancel()
		for i, c := range stage {
			log.Debug("doctor check", "name", c.Name(), "status", results[i].Status, "detail", results[i].Detail, "took", took[i])
			records = append(records, CheckRecord{Name: c.Name(), Status: results[i].Status, Detail: results[i].Detail, DurationMS: ms(took[i])})
			findings = append(findings, results[i].Findings...)
		}
	}
	r := diagnose(s, findings)
	r.Checks = records
	r.DurationMS = ms(time.Since(start))
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
