// Package fault puts a connect-level fault on a TCP port of this host for a
// bounded time, so that clients' retry logic can be tested against the real
// thing: a refused connect (a reset), a SYN that vanishes, an ICMP
// port-unreachable. Every fault is a firewall rule on the INPUT path that
// matches only the first SYN of a connection (established connections go
// on), in reach's own nftables table (inet reach_fault) or, where nft is
// missing, its own iptables chain (REACH-FAULT, jumped to from INPUT by one
// rule of ours). No other rule is read for writing, changed or deleted.
//
// Every rule carries a marker comment: its fault's id, mode, port, expiry
// and owner (the pid and start time of the process that applied it). So
// the rules describe themselves, and whoever comes next can tell a live
// fault from a leftover: Sweep removes rules whose expiry has passed or
// whose owner is gone (killed with -9), and every Apply sweeps first.
// Run applies a fault, waits for its expiry or its context, and removes
// it; Watch is the bounded remover a detached process runs beside it.
//
// Operations on one host are serialised with a lock file, so that two runs
// never race on the table or chain they share.
package fault

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Mode is a kind of fault.
type Mode string

// The modes.
const (
	// Refuse answers a SYN with a TCP reset (REJECT with tcp-reset): the
	// client sees ECONNREFUSED, as if nothing listened.
	Refuse Mode = "refuse"
	// Drop drops the SYN: the client retransmits and times out.
	Drop Mode = "drop"
	// RejectICMP answers a SYN with ICMP (ICMPv6) port-unreachable, what
	// iptables' REJECT sends by default: the client sees ECONNREFUSED too,
	// but carried by ICMP, the mark of a firewall.
	RejectICMP Mode = "reject-icmp"
)

// Modes lists the modes, for help texts and validation.
var Modes = []Mode{Refuse, Drop, RejectICMP}

// MaxFor bounds how long a fault may last, and so how long the remover
// that watches it may live.
const MaxFor = time.Hour

// Spec is one fault to apply.
type Spec struct {
	Mode Mode
	Port uint16
	// For is how long the fault lasts: more than 0, at most MaxFor.
	For time.Duration
	// Probability is the chance that a SYN is hit; 0 means 1 (every SYN).
	Probability float64
	// Source limits the fault to clients in this prefix; the zero value
	// means every client (IPv4 and IPv6).
	Source netip.Prefix
}

// ErrInvalid is wrapped by every *SpecError.
var ErrInvalid = errors.New("fault: invalid spec")

// SpecError is an invalid Spec field.
type SpecError struct {
	Field string // "mode", "port", "for", "probability" or "source"
	Value string
	Why   string
}

func (e *SpecError) Error() string { return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Why) }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *SpecError) Unwrap() error { return ErrInvalid }

// Validate says what is wrong with s, if anything.
func (s Spec) Validate() error {
	switch s.Mode {
	case Refuse, Drop, RejectICMP:
	default:
		return &SpecError{"mode", string(s.Mode), fmt.Sprintf("unknown; use one of %v", Modes)}
	}
	if s.Port == 0 {
		return &SpecError{"port", "0", "give the TCP port to fault, 1-65535"}
	}
	if s.For <= 0 || s.For > MaxFor {
		return &SpecError{"for", s.For.String(), fmt.Sprintf("a fault lasts more than 0 and at most %v", MaxFor)}
	}
	if s.Probability < 0 || s.Probability > 1 || s.Probability != s.Probability {
		return &SpecError{"probability", fmt.Sprint(s.Probability), "give a chance between 0 and 1 (0.5: half the SYNs)"}
	}
	if s.Probability != 0 && s.Probability < 1.0/probScale {
		return &SpecError{"probability", fmt.Sprint(s.Probability), fmt.Sprintf("at least %g, or 1", 1.0/probScale)}
	}
	if s.Source.IsValid() && s.Source != s.Source.Masked() {
		return &SpecError{"source", s.Source.String(), fmt.Sprintf("host bits set; use %v", s.Source.Masked())}
	}
	return nil
}

// probScale is the resolution of Probability: nft draws numgen random mod
// probScale; markers keep four decimals.
const probScale = 10000

// hits returns how many of probScale draws hit, for a probability p
// (0 meaning every draw).
func hits(p float64) int {
	if p == 0 || p >= 1 {
		return probScale
	}
	return max(1, int(p*probScale+0.5))
}
