// Package agent runs reach on every server of a fleet, and defines the wire
// protocol it speaks with the hub. An Agent fetches its probe list from the
// hub, probes those targets on schedule, reports the results in batches
// (buffering, bounded, through hub outages) and exports them as Prometheus
// metrics. It also answers one narrow question for the doctor on other
// hosts: "what do you see for port P?" (listening sockets on P and nearby
// ports, the firewall rules that decide the asker's connection); Client and
// Discovery ask it, as a doctor.RemoteEvidence.
//
// The hub's side of the protocol is package hub; agents know it only over
// the network. Every call carries a shared bearer token, compared in
// constant time; TLS with client certificates (mTLS) is supported through
// standard tls.Config values (see ServerTLS, ClientTLS).
package agent

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/reach-tools/reach/netwatch"
	"github.com/reach-tools/reach/probe"
)

// Paths of the protocol. The hub serves the first three, the agent the rest.
const (
	PathTargets = "/agent/v1/targets" // GET ?agent=NAME -> ProbeList
	PathResults = "/agent/v1/results" // POST Batch -> IngestReply
	// PathAgents lists the fleet's hosts and their agents' URLs
	// ([]AgentInfo), so the doctor can find the agent on a target host.
	PathAgents = "/agent/v1/agents"
	// PathRegister (register.go): agents announce themselves and leave.
	PathEvidence = "/agent/v1/evidence" // GET ?addr=IP:PORT -> doctor.HostEvidence (served by agents)
	PathMetrics  = "/metrics"           // Prometheus exposition (served by agents)
)

// MaxBody bounds what either side reads from the other.
const MaxBody = 8 << 20

// MaxBatch is the most results a batch may carry: agents send no more, and
// the hub refuses a larger batch whole (413, RefusedTooLarge).
const MaxBatch = 5000

// Target is one endpoint an agent must probe.
type Target struct {
	// ID names the target in results, metrics and the matrix: the hub's host
	// name and the port, "db:5432", or the configured address for targets
	// outside the fleet.
	ID string `json:"id"`
	// Host is the hub's name of the target host (empty outside the fleet).
	Host string `json:"host,omitempty"`
	// Addr is what the agent dials.
	Addr netip.AddrPort `json:"addr"`
}

// ProbeList is the hub's answer to an agent asking what to probe.
type ProbeList struct {
	Agent    string   `json:"agent"`
	Interval Duration `json:"interval"`
	Timeout  Duration `json:"timeout"`
	Targets  []Target `json:"targets"`
	// Recheck is how many times, RecheckGap apart, the agent probes a
	// target again at once after a network change that may affect it:
	// enough for the hub to move its state (the larger of rise and fall).
	// 0 means DefaultRecheck.
	Recheck int `json:"recheck,omitempty"`
	// Version names this list's content; IngestReply.List names the
	// hub's current one, so an agent fetches its list as soon as it
	// changes (agents registered or left), not only every RefreshEvery.
	Version string `json:"version,omitempty"`
}

// Re-probes after a network change.
const (
	DefaultRecheck = 3
	MaxRecheck     = 10
	RecheckGap     = 100 * time.Millisecond
)

// Result is one probe outcome as reported to the hub.
type Result struct {
	// Source is the agent that probed. Agents may leave it empty; the hub
	// always sets it to the authenticated agent's name.
	Source string         `json:"source,omitempty"`
	Target string         `json:"target"` // Target.ID
	Addr   netip.AddrPort `json:"addr"`
	Class  probe.Class    `json:"class"`
	Errno  int            `json:"errno,omitempty"` // the errno behind Class, 0 when none
	RTT    Duration       `json:"rtt"`
	Time   time.Time      `json:"time"` // when the probe started
	Error  string         `json:"error,omitempty"`
}

// Batch is what an agent posts to the hub.
type Batch struct {
	Agent   string   `json:"agent"`
	Results []Result `json:"results"`
	// Dropped counts results the agent discarded since it started because
	// its buffer was full while the hub was unreachable.
	Dropped uint64 `json:"dropped"`
	// Run names this run of the agent: when it started, in Unix
	// nanoseconds. A later run replaces an earlier one at the hub.
	Run int64 `json:"run,omitempty"`
	// Seq is the sequence number of Results[0] in this run: the agent
	// numbers results from 1 as it buffers them, and a resend carries the
	// same numbers, so the hub ignores what it already has. A batch
	// without Run and Seq (an agent from before them) is accepted without
	// that protection, with a warning, until its agent sends a sequenced one.
	Seq uint64 `json:"seq,omitempty"`
	// Changes are network changes the agent saw (netwatch) and re-probed
	// after, at most MaxChanges, oldest first. A batch may carry changes
	// and no results.
	Changes []NetChange `json:"changes,omitempty"`
}

// MaxChanges is the most network changes a batch carries; an agent keeps
// no more waiting (the oldest go first).
const MaxChanges = 8

// NetChange is a change of an agent's network (a burst of them, as package
// netwatch coalesces them) after which it re-probed the targets it may
// affect.
type NetChange struct {
	Time    time.Time         `json:"time"`  // the first change
	Count   int               `json:"count"` // changes in the burst
	Changes []netwatch.Change `json:"changes"`
	Targets []string          `json:"targets"` // Target.IDs re-probed at once
}

// IngestReply is the hub's answer to a batch.
type IngestReply struct {
	Accepted int `json:"accepted"`
	// Rejected counts results the hub did not store, for any of the reasons
	// in Refused.
	Rejected int `json:"rejected"`
	// Refused counts the rejected results by reason, so the agent's operator
	// sees why (the hub counts them in reach_hub_rejected_results_total).
	Refused map[Reason]int `json:"refused,omitempty"`
	// Truncated counts accepted results whose error text the hub cut to
	// MaxErrorText.
	Truncated int `json:"truncated,omitempty"`
	// Next is the sequence number the hub expects next from this run; 0
	// for an unsequenced batch.
	Next uint64 `json:"next,omitempty"`
	// List is the Version of the agent's probe list at the hub now: when
	// it is not the agent's, the agent fetches the list again at once.
	List string `json:"list,omitempty"`
}

// Reason says why the hub refused a result. The values are the reason
// label of the hub's reach_hub_rejected_results_total.
type Reason string

// The reasons. Every one is counted; none ends in a stored sample.
const (
	// RefusedUnknownAgent: the batch names an agent the hub config lacks.
	RefusedUnknownAgent Reason = "unknown_agent"
	// RefusedUnassigned: a target the hub did not give this agent.
	RefusedUnassigned Reason = "unassigned"
	// RefusedClass: not one of probe.Classes.
	RefusedClass Reason = "class"
	// RefusedRTT: negative, or longer than the pair's timeout and a margin.
	RefusedRTT Reason = "rtt"
	// RefusedErrno: an errno outside [0, MaxErrno].
	RefusedErrno Reason = "errno"
	// RefusedTooOld: taken before anything the agent's buffer could hold.
	RefusedTooOld Reason = "too_old"
	// RefusedFuture: taken ahead of the hub's clock by more than the skew
	// allowed.
	RefusedFuture Reason = "future"
	// RefusedDuplicate: a sequence number this run already sent: a resend
	// of what the hub has, or a replay.
	RefusedDuplicate Reason = "duplicate"
	// RefusedOldRun: a batch of an earlier run of the agent than the hub
	// has seen (a replay, or a second agent process with the same name).
	RefusedOldRun Reason = "old_run"
	// RefusedUnsequenced: a batch without Run and Seq from an agent that
	// sent them before (a downgrade, or a replay stripped of them).
	RefusedUnsequenced Reason = "unsequenced"
	// RefusedSequence: a run that starts ahead of the hub's clock, or
	// sequence numbers that overflow.
	RefusedSequence Reason = "sequence"
	// RefusedTooLarge: the batch held more than MaxBatch results (413).
	RefusedTooLarge Reason = "batch_too_large"
	// RefusedRate: the agent sent more results than its budget (429, with
	// Retry-After; the agent keeps them and sends them later).
	RefusedRate Reason = "rate_limited"
	// RefusedBytes: the agent sent more bytes than its budget (429).
	RefusedBytes Reason = "bytes_limited"
)

// Reasons lists every Reason.
var Reasons = []Reason{RefusedUnknownAgent, RefusedUnassigned, RefusedClass, RefusedRTT,
	RefusedErrno, RefusedTooOld, RefusedFuture, RefusedDuplicate, RefusedOldRun,
	RefusedUnsequenced, RefusedSequence, RefusedTooLarge, RefusedRate, RefusedBytes}

// Bounds the hub holds results to.
const (
	// MaxErrorText caps a result's error text. A probe's error is one line
	// (operation, address, errno: under 200 bytes); 1 KiB keeps any real one
	// whole. Longer text is cut, not refused: class, rtt and time are still
	// evidence, and only the text is too long to show.
	MaxErrorText = 1024
	// MaxErrno is the largest errno a result may carry: above Linux's 4095
	// and the Windows socket errors (WSAE*, 10000-11999).
	MaxErrno = 1<<16 - 1
)

// AgentInfo is one host of the fleet as the hub sees it: the answer to
// PathAgents.
type AgentInfo struct {
	Name     string     `json:"name"`
	Addr     netip.Addr `json:"addr"`
	Agent    string     `json:"agent,omitempty"` // base URL of its agent: configured, or as it advertised
	LastSeen time.Time  `json:"last_seen,omitzero"`
	Dropped  uint64     `json:"dropped"`
	// Labels are the host's labels (from the config, or as it registered).
	Labels map[string]string `json:"labels,omitempty"`
	// Registered is set for a host the hub knows because its agent
	// registered, not from its config.
	Registered bool `json:"registered,omitempty"`
	// State is "" while the agent calls in time, else StateStale or
	// StateAlerting.
	State string `json:"state,omitempty"`
}

// States of a registered agent that stopped calling the hub.
const (
	StateStale    = "stale"    // silent past the hub's registration.stale_after
	StateAlerting = "alerting" // stale past alert_after too: the hub alerted
)

// Duration is a time.Duration that reads and writes JSON as "1.5s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("agent: duration must be a string like \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	*d = Duration(v)
	return nil
}

// resultOf converts a probe result for the wire.
func resultOf(t Target, r probe.Result, start time.Time) Result {
	out := Result{Target: t.ID, Addr: t.Addr, Class: r.Class, RTT: Duration(r.RTT), Time: start}
	out.Errno = int(r.Errno)
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}
