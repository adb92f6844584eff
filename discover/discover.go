// Package discover finds which hosts are there before a port scan, as nmap's
// ping scan does, and says for each how it knows. On a directly connected
// segment it asks by ARP (IPv4) or neighbour solicitation (IPv6), sent and
// read by reach itself over AF_PACKET and raw ICMPv6 where it has the
// privilege (CAP_NET_RAW); without it, it makes the kernel ask (a ping or a
// TCP connect) and reads the answer from the kernel's neighbour table.
// Through a router it sends ICMP echo (a raw socket when privileged, the
// ping socket where net.ipv4.ping_group_range allows) and TCP pings
// (connect() to PingPorts with the first request, kept open until the
// verdict: a SYN-ACK or a reset both mean up).
//
// Timing adapts as nmap's does: each segment (and each router) keeps RFC
// 6298's smoothed round-trip time over the answers seen; a request waits
// srtt + 4·rttvar, at least Floor and at most Ceiling (Ceiling until the
// first answer), doubled at each retransmission.
//
// A host is Down only on evidence as strong as the kernel's own, which
// exists only on a directly connected segment (no packet reaches a host that
// does not answer ARP or neighbour solicitation): it got all Tries requests,
// each waited its full timeout, and another host on the same segment
// answered in this run, so the segment works and its round-trip time is
// known. Without privilege the request is the kernel's (one per second), so
// a silent neighbour is Down when its neighbour entry is still unresolved
// (INCOMPLETE or FAILED) at the end of the same window. Everything else is
// Unknown, never Down: a host behind a router that answers no ping, and a
// segment where nothing answered. The caller probes those some other way
// (package scan scans their ports).
package discover

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/reach-tools/reach/internal/rtt"
)

// State is what discovery concluded about a host.
type State int

// States.
const (
	Unknown State = iota // the evidence was thin: probe the host another way
	Up                   // something answered
	Down                 // silent on its own segment, by the rule in the package doc
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// Method names the evidence behind a Result.
type Method string

// Methods.
const (
	ARP   Method = "arp"   // ARP (reach's own requests, or the kernel's)
	ND    Method = "nd"    // neighbour discovery, likewise
	Echo  Method = "echo"  // ICMP echo
	TCP   Method = "tcp"   // a TCP ping
	Local Method = "local" // an address of this host
	None  Method = ""      // nothing could be sent (see Result.Evidence)
)

// Reasons, in nmap's words.
const (
	ReasonARPResponse = "arp-response"
	ReasonNDResponse  = "nd-response"
	ReasonEchoReply   = "echo-reply"
	ReasonSynAck      = "syn-ack"
	ReasonReset       = "reset"
	ReasonLocalhost   = "localhost-response"
	ReasonNoResponse  = "no-response"
)

// Result is what discovery learnt about one address.
type Result struct {
	Addr   netip.Addr
	State  State
	By     Method // the evidence: for Up what answered, for Down and Unknown what got no answer
	Reason string // for Up and Down; empty for Unknown
	// RTT is the first answer's round trip (Up only).
	RTT      time.Duration
	MAC      net.HardwareAddr // from ARP or ND
	Evidence string           // in words, e.g. "no reply to 3 ARP requests in 420ms; 3 other hosts on lan0 answered"
	// Probed is set on an Unknown host behind a router that got every
	// request, each waited out, while other hosts behind that router
	// answered: what is missing is proof, not a try. (Unset on a segment,
	// where the kernel's own neighbour resolution can still tell.)
	Probed bool
	// Waited is the longest that one request waited for a host that never
	// answered: the last one's timeout (240 ms on a fast path).
	Waited time.Duration
}

// Defaults used when Options fields are zero.
const (
	// DefaultFloor is the shortest wait. The three waits add up to 7·floor:
	// 420 ms, which an answer 300 ms late (a loaded bridge, a host that
	// answers ARP slowly) meets with room to spare, and which keeps a LAN
	// sweep as fast as nmap's.
	DefaultFloor   = 60 * time.Millisecond
	DefaultCeiling = 250 * time.Millisecond // nmap -T5's initial RTT timeout
	DefaultTries   = 3
	// MaxInFlight bounds the hosts being asked at once.
	MaxInFlight = 1024
)

// DefaultPingPorts are the TCP ping's ports: nmap's 80 and 443, and 22.
var DefaultPingPorts = []uint16{80, 443, 22}

// Options tune discovery; the zero value of each field is its default.
type Options struct {
	PingPorts []uint16      // nil: DefaultPingPorts
	Floor     time.Duration // the shortest wait for an answer; 0: DefaultFloor
	Ceiling   time.Duration // the longest, and the wait before any answer; 0: DefaultCeiling
	Tries     int           // requests per silent host; 0: DefaultTries
	// Source and Interface, when set, are where requests leave from, as
	// for the port scan.
	Source    netip.Addr
	Interface string
	// Unprivileged makes discovery use only what an unprivileged user may
	// (the kernel's ARP, ping sockets, TCP connects), even as root.
	Unprivileged bool
	// OnResult, when set, gets each result as it is decided (serialized).
	OnResult func(Result)
	// RunIn, when set, runs the code that makes sockets (tests pass a
	// network namespace's Do).
	RunIn  func(func() error) error
	Logger *slog.Logger
}

// Errors.
var (
	ErrUnsupported = errors.New("discover: unsupported on this OS (host discovery needs Linux)")
	ErrNoTargets   = errors.New("discover: no addresses")
)

func (o Options) withDefaults() Options {
	if o.PingPorts == nil {
		o.PingPorts = DefaultPingPorts
	}
	if o.Floor <= 0 {
		o.Floor = DefaultFloor
	}
	if o.Ceiling <= 0 {
		o.Ceiling = DefaultCeiling
	}
	o.Floor = min(o.Floor, o.Ceiling)
	if o.Tries <= 0 {
		o.Tries = DefaultTries
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RunIn == nil {
		o.RunIn = func(f func() error) error { return f() }
	}
	return o
}

// Run asks every address whether it is there and returns one Result per
// distinct address, in the order given. When ctx ends early, the hosts not
// judged yet are Unknown and the error is ctx's.
func Run(ctx context.Context, addrs []netip.Addr, opt Options) ([]Result, error) {
	if len(addrs) == 0 {
		return nil, ErrNoTargets
	}
	return run(ctx, addrs, opt.withDefaults())
}

// group is the hosts that share a path: one directly connected segment (an
// interface), or one router. Their answers time each other's requests.
type group struct {
	name     string // "lan0", or "router 198.18.0.1"
	onLink   bool   // a directly connected segment: silence there can be decisive
	rtt      rtt.Estimator
	answered int // hosts of the group that answered in this run
}

// wait is how long try number n (0-based) of a request to this group waits.
func (g *group) wait(n int, opt Options) time.Duration {
	return g.rtt.Timeout(opt.Floor, opt.Ceiling) << n
}

// verdict judges a host that got sent requests (made by the kernel when
// kernel is set) and no answer, by the rule of the package doc. entry is
// what the kernel's neighbour table holds for it when the kernel asked.
func (g *group) verdict(by Method, sent int, since time.Duration, entry neighEntry, kernel bool) (State, string) {
	what := map[Method]string{ARP: "ARP request", ND: "neighbour solicitation", Echo: "ICMP echo request", TCP: "TCP ping"}[by]
	asked := "no reply to " + plural(sent, what)
	if kernel {
		asked += " (the kernel's)"
	}
	asked += " in " + since.Round(time.Millisecond).String()
	switch {
	case !g.onLink:
		return Unknown, asked + " through " + g.name + "; silence through a router proves nothing"
	case g.answered == 0:
		return Unknown, asked + ", and no host on " + g.name + " answered: its round trip is unknown"
	case entry == resolvedEntry:
		return Up, "the kernel's " + what + " was answered (neighbour entry reachable)"
	case entry == noEntry:
		return Unknown, asked + "; the kernel's neighbour table says neither way"
	}
	return Down, asked + "; " + plural(g.answered, "other host") + " on " + g.name + " answered (srtt " +
		g.rtt.SRTT().Round(time.Microsecond).String() + ")"
}

// neighEntry is what the kernel's neighbour table says about a host.
type neighEntry int

const (
	unresolvedEntry neighEntry = iota // INCOMPLETE or FAILED (or reach asked itself)
	resolvedEntry                     // REACHABLE, or another state that had an answer
	noEntry                           // none: the kernel never asked
)

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
