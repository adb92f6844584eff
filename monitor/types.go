package monitor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// LocalSource names results probed by this process.
const LocalSource = "local"

// State is an endpoint's standing after rise/fall hysteresis.
type State string

const (
	StateUnknown State = "unknown" // no verdict yet
	StateUp      State = "up"
	StateDown    State = "down"
)

// Sample is one probe outcome as stored.
type Sample struct {
	Endpoint string        `json:"endpoint"`
	Source   string        `json:"source"`
	Time     time.Time     `json:"time"`
	OK       bool          `json:"ok"` // healthy by the endpoint's expect and latency threshold
	Class    probe.Class   `json:"class"`
	Errno    int           `json:"errno,omitempty"`
	RTT      time.Duration `json:"rtt_ns"`
	// The layers above TCP, for a URL target; kept in memory (the last
	// sample of each endpoint), not in the store.
	Layer      string        `json:"layer,omitempty"`       // the layer that decided: tcp, tls, http, mysql...
	Cause      string        `json:"layer_cause,omitempty"` // its cause id (app.Cause), when not ready
	Detail     string        `json:"detail,omitempty"`      // what it said
	TLS        time.Duration `json:"tls_ns,omitempty"`      // the TLS handshake's time
	FirstByte  time.Duration `json:"first_byte_ns,omitempty"`
	CertExpiry time.Time     `json:"cert_expiry,omitzero"` // the server certificate's NotAfter
}

// Status is where an endpoint stands now.
type Status struct {
	Endpoint string            `json:"endpoint"`
	Source   string            `json:"source"`
	Target   string            `json:"target,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	State    State             `json:"state"`
	Since    time.Time         `json:"since"`
	Last     Sample            `json:"last,omitzero"`    // absent before the first probe
	Oks      int               `json:"consecutive_ok"`   // consecutive healthy results
	Fails    int               `json:"consecutive_fail"` // consecutive unhealthy results
	Cause    string            `json:"cause,omitempty"`  // the doctor's cause id while down
}

// Transition is a change of state, with the doctor's diagnosis when the
// endpoint went down.
type Transition struct {
	ID        int64       `json:"id"`
	Endpoint  string      `json:"endpoint"`
	Source    string      `json:"source"`
	Time      time.Time   `json:"time"`
	From      State       `json:"from"`
	To        State       `json:"to"`
	Class     probe.Class `json:"class"`
	Errno     int         `json:"errno,omitempty"`
	Diagnosis *Diagnosis  `json:"diagnosis,omitempty"`
	// Change is the network change the transition followed, when one did
	// (kept in memory: the store does not keep it).
	Change string `json:"change,omitempty"`
}

// Finding is one row of the doctor's table.
type Finding struct {
	Cause      string `json:"cause,omitempty"`      // the doctor's cause id for this row
	Confidence string `json:"confidence,omitempty"` // confirmed, likely or possible
	Issue      string `json:"issue"`
	Evidence   string `json:"evidence,omitempty"`
	Fix        string `json:"fix,omitempty"`
}

// Diagnosis is what a Diagnoser found out about a failing endpoint.
type Diagnosis struct {
	Cause    string          `json:"cause"` // stable cause id, e.g. "not-listening"
	Verdict  string          `json:"verdict,omitempty"`
	Findings []Finding       `json:"findings,omitempty"`
	Report   json.RawMessage `json:"report,omitempty"` // the full report as data
	Error    string          `json:"error,omitempty"`  // set when the diagnosis itself failed
}

// Diagnoser explains why an endpoint cannot be reached; the doctor
// implements it. Monitor calls it once per transition to down.
type Diagnoser interface {
	Diagnose(ctx context.Context, ep endpoint.Endpoint) (Diagnosis, error)
}

// SourceDiagnoser is a Diagnoser that can also explain what another host
// saw: a result with a source other than LocalSource (an agent's), for which
// this host's own view would mislead (e.g. by asking the target host).
type SourceDiagnoser interface {
	Diagnoser
	DiagnoseFrom(ctx context.Context, source string, ep Endpoint, class probe.Class) (Diagnosis, error)
}

// DiagnoserFunc adapts a function to Diagnoser.
type DiagnoserFunc func(ctx context.Context, ep endpoint.Endpoint) (Diagnosis, error)

// Diagnose calls f.
func (f DiagnoserFunc) Diagnose(ctx context.Context, ep endpoint.Endpoint) (Diagnosis, error) {
	return f(ctx, ep)
}

// healthy judges a probe result by what the endpoint expects.
func healthy(ep Endpoint, r probe.Result) bool {
	if ep.Expect == ExpectClosed {
		return r.Class != probe.Open
	}
	if !r.Ready() || certExpiring(ep, r, time.Now()) {
		return false
	}
	return ep.LatencyThreshold <= 0 || r.RTT <= ep.LatencyThreshold
}

// certExpiring reports whether the certificate has fewer days left than
// the endpoint's warn_days.
func certExpiring(ep Endpoint, r probe.Result, now time.Time) bool {
	return ep.Layers != nil && ep.Layers.WarnDays > 0 && r.TLS != nil && !r.TLS.NotAfter.IsZero() &&
		r.TLS.DaysLeft(now) < ep.Layers.WarnDays
}
