package dial

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Policy chooses the order in which a Dialer tries its endpoints.
type Policy string

// The policies. The zero Policy is Ordered.
const (
	// Ordered tries the endpoints in the order given: priority failover.
	Ordered Policy = "ordered"
	// RoundRobin starts each dial at the next endpoint, spreading load.
	RoundRobin Policy = "round-robin"
	// Random tries the endpoints in a fresh random order on each dial.
	Random Policy = "random"
	// Race starts the endpoints in order, each AttemptDelay after the last
	// (or at once when the last fails), and keeps the first to connect:
	// RFC 8305's connection attempts, across servers.
	Race Policy = "race"
)

// Policies lists the valid policies.
var Policies = []Policy{Ordered, RoundRobin, Random, Race}

// ParsePolicy parses a policy name as users type it ("rr" is accepted for
// round-robin).
func ParsePolicy(s string) (Policy, error) {
	p := Policy(strings.ToLower(strings.TrimSpace(s)))
	if p == "rr" {
		return RoundRobin, nil
	}
	for _, v := range Policies {
		if p == v {
			return v, nil
		}
	}
	names := make([]string, len(Policies))
	for i, v := range Policies {
		names[i] = string(v)
	}
	return "", fmt.Errorf("dial: unknown policy %q; want one of %s", s, strings.Join(names, ", "))
}

func (p Policy) String() string {
	if p == "" {
		return string(Ordered)
	}
	return string(p)
}

// arrange puts healthy candidates in the policy's order. rr is the dial's
// round-robin ticket.
func (p Policy) arrange(cs []candidate, rr uint64) {
	switch p {
	case RoundRobin:
		if n := len(cs); n > 1 {
			k := int(rr % uint64(n))
			rotated := append(append([]candidate(nil), cs[k:]...), cs[:k]...)
			copy(cs, rotated)
		}
	case Random:
		rand.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	}
}
