package doctor

import (
	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/probe"
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
	ConntrackFull         Cause = "conntrack-full" // the connection tracking table has no room
	// The causes past the host's own sockets: its nat rules, userland
	// proxies and containers (see NATCheck).
	NotPublished        Cause = "not-published"         // a container listens on the port; no rule or proxy leads there
	NATMismatch         Cause = "nat-mismatch"          // the DNAT target's namespace listens on another port
	NATTargetGone       Cause = "nat-target-gone"       // the DNAT target address belongs to no namespace any more
	NoEndpoints         Cause = "no-endpoints"          // kube-proxy rejects: the Service has no ready endpoints
	PublishedOnLoopback Cause = "published-on-loopback" // published on 127.0.0.1 only, dialled on another address
	ProxyBackendDown    Cause = "proxy-backend-down"    // a userland proxy accepts, then closes: its backend does not answer
	Reachable           Cause = "reachable"
	Unknown             Cause = "unknown" // cancelled, or nothing explains what was seen
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
	// refines marks a finding that names more precisely a cause another
	// check found as certainly: merge keeps its issue and fix.
	refines bool
	// settles says the target host's evidence past its own sockets (its
	// rules, proxies, containers) names the cause: the client's guesses
	// would only blur it.
	settles bool
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
	// Vantage is the network namespace the ladder ran from, when it was
	// not the asking program's own (RunFrom); absent otherwise.
	Vantage    *Vantage `json:"vantage,omitempty"`
	DurationMS float64  `json:"duration_ms"`
}

// AddrReport is the outcome for one address of the target.
type AddrReport struct {
	Addr   string      `json:"addr"`
	Class  probe.Class `json:"class"`
	RTTMS  float64     `json:"rtt_ms"`
	Probes []string    `json:"probes"` // class of each repeated probe
	// Intermittent is set when the probes disagree: the endpoint flaps.
	Intermittent bool `json:"intermittent,omitempty"`
	// Paths are where the target host's rules and proxies send the
	// connection (one per way, when they split it), when it goes past
	// the host's own sockets or the path was followed.
	Paths []Path `json:"paths,omitempty"`
	// TLS and App are what the layers above TCP answered, when the target
	// asked for them and the address connected.
	TLS *probe.TLSResult `json:"tls,omitempty"`
	App *app.Result      `json:"app,omitempty"`
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
