package agent

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrTargetRefused marks a target an agent will not probe: see Forbidden.
var ErrTargetRefused = errors.New("agent: target refused")

// Forbidden names the kind of address an agent refuses to probe unless its
// operator allows it (Config.AllowTargets), "" for any other. Whoever
// controls a hub controls what every agent connects to, so agents refuse
// the addresses no fleet monitors and an attacker wants reached from
// inside: link-local (169.254.0.0/16 holds cloud metadata services,
// fe80::/10), unspecified (0.0.0.0 and :: reach this host itself),
// broadcast (255.255.255.255) and multicast (many hosts at once).
func Forbidden(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	}
	return ""
}

// TargetError is a target the agent refused to probe; the agent reports it
// to the hub as the target's result (class local-error), every interval,
// instead of probing.
type TargetError struct {
	Target netip.AddrPort
	Kind   string // what Forbidden said
}

func (e *TargetError) Error() string {
	a := e.Target.Addr().Unmap()
	return fmt.Sprintf("agent: refused to probe %s (%s address): an agent probes those only when its "+
		"operator allows them (reach agent --allow-targets %s); nothing was sent",
		e.Target, e.Kind, netip.PrefixFrom(a, a.BitLen()))
}

func (e *TargetError) Unwrap() error { return ErrTargetRefused }

// checkTarget refuses a forbidden target that no allowed prefix holds. It
// runs on the address the agent would dial, before any socket exists.
func checkTarget(ap netip.AddrPort, allow []netip.Prefix) error {
	kind := Forbidden(ap.Addr())
	if kind == "" {
		return nil
	}
	a := ap.Addr().Unmap()
	for _, p := range allow {
		if p.Contains(a) {
			return nil
		}
	}
	return &TargetError{Target: ap, Kind: kind}
}
