package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// Narrow returns only what ev shows about a TCP connection from src to dst:
// the listeners on dst's port and on ports that look like a slip of it, the
// firewall rules that decide that connection on the way in, where the
// host's nat rules send it (walked here, from src: rules cross the wire
// without their conditions), and the containers' namespaces it or a proxy
// leads to, or that listen on its port. An agent answers RemoteEvidence
// with it, so it never hands out its whole socket table or ruleset.
//
// Rules cross the wire without their parsed conditions, and the asker
// evaluates them again: kept rules are exactly those that match, so they
// match again there. Rules that match only if conditions the doctor cannot
// check hold (interfaces, conntrack state, ...) become notes instead.
func (ev HostEvidence) Narrow(src, dst netip.AddrPort) HostEvidence {
	out := HostEvidence{Host: ev.Host, Addresses: ev.Addresses, Firewall: ev.Firewall, Notes: ev.Notes}
	if ev.Listening != nil { // nil means the sockets could not be listed
		out.Listening = []sockets.Socket{}
	}
	for _, sk := range ev.Listening {
		if p := sk.Local.Port(); p == dst.Port() || similarPort(p, dst.Port()) {
			out.Listening = append(out.Listening, sk)
		}
	}
	for _, m := range firewall.Evaluate(ev.Rules, firewall.Packet{Direction: "in", Src: src, Dst: dst}) {
		if m.Exact {
			out.Rules = append(out.Rules, m.Rule)
			continue
		}
		out.Notes = append(out.Notes, fmt.Sprintf("%s %s/%s: %q %s the connection if %s",
			m.Rule.Source, m.Rule.Table, m.Rule.Chain, m.Rule.Text, m.Rule.Verdict+"s", strings.Join(m.Unchecked, ", ")))
	}
	ev.narrowBeyond(&out, src, dst)
	return out
}

// Explain names what a host's evidence shows about a connection from src to
// dst that ended in class, as the ladder's sockets and firewall checks do:
// a hub uses it to explain a pair an agent reported, with the target's
// evidence. detail says what was looked at, also when nothing was found.
func Explain(ev HostEvidence, src, dst netip.AddrPort, class probe.Class) (detail string, findings []Finding) {
	detail, findings = judgeSockets(&ev, dst, class, false)
	if v := examine(&ev, dst, class, false); len(v.findings) > 0 || len(v.paths) > 0 {
		detail += "; " + v.detail
		findings = append(findings, v.findings...)
	}
	for _, m := range firewall.Evaluate(ev.Rules, firewall.Packet{Direction: "in", Src: src, Dst: dst}) {
		if f, ok := firewallFinding(m, "in", dst, class, ev.Host); ok {
			findings = append(findings, f)
		}
	}
	return detail, findings
}

// AgentFailure names why an agent gave no evidence for an address.
type AgentFailure string

// The ways asking an agent fails.
const (
	AgentUnreachable  AgentFailure = "unreachable"  // no connection, or no answer in time
	AgentSlow         AgentFailure = "slow"         // connected, but no whole answer within the timeout
	AgentUnauthorized AgentFailure = "unauthorized" // it refused our token or certificate
	AgentRateLimited  AgentFailure = "rate-limited" // it limits how often it answers
	AgentNone         AgentFailure = "no-agent"     // none is known for that address
	AgentWrongHost    AgentFailure = "wrong-host"   // it answered, but the address is not its host's
	AgentFailed       AgentFailure = "failed"       // anything else: a bad answer, a server error
)

// AgentError is why an agent gave no evidence. RemoteEvidence sources return
// it, wrapping the cause; other errors count as AgentUnreachable when they
// are network errors or timeouts, else AgentFailed. Who was asked is in
// typed fields, so the report can say what to do without reading messages.
type AgentError struct {
	// Hub is set when the hub failed, asked which agent runs on the host;
	// else the agent failed.
	Hub bool
	// URL is the base URL of the hub or agent asked; empty when not known.
	URL string
	// Name is the agent's host name in the hub's config; empty when not known.
	Name string
	// Answered, set with AgentWrongHost, names the agent that answered for
	// another host, as its HostEvidence.Host does.
	Answered string
	Failure  AgentFailure
	Err      error
}

// Who names who was asked, as HostEvidence.Host names an agent that
// answers: "agent db (https://198.18.0.2:7070)", "agent URL" or "hub URL";
// empty when nothing is known of it.
func (e *AgentError) Who() string {
	switch {
	case e.Answered != "":
		return e.Answered
	case e.Hub:
		return strings.TrimSpace("hub " + e.URL)
	case e.Name != "" && e.URL != "":
		return fmt.Sprintf("agent %s (%s)", e.Name, e.URL)
	case e.Name != "" || e.URL != "":
		return "agent " + e.Name + e.URL
	}
	return ""
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("%s: %s: %v", cmp.Or(e.Who(), "the agent"), e.Failure, e.Err)
}

func (e *AgentError) Unwrap() error { return e.Err }

// asAgentError finds or makes the AgentError behind err.
func asAgentError(err error) *AgentError {
	var ae *AgentError
	if errors.As(err, &ae) {
		return ae
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) {
		return &AgentError{Failure: AgentUnreachable, Err: err}
	}
	return &AgentError{Failure: AgentFailed, Err: err}
}

// fix says what to do about e when asking about ap.
func (e *AgentError) fix(ap netip.AddrPort) string {
	host := ap.Addr()
	there := fmt.Sprintf("or run `reach check %s` on %s itself", ap, host)
	switch e.Failure {
	case AgentUnreachable:
		reach := ""
		if u, err := url.Parse(e.URL); err == nil && u.Host != "" {
			reach = " (reach check " + u.Host + ")"
		}
		if e.Hub {
			return fmt.Sprintf("check that the hub runs and that this host reaches it%s; %s", reach, there)
		}
		return fmt.Sprintf("check that reach agent runs on %s, listening where other hosts reach it, and that this host reaches it%s; %s", host, reach, there)
	case AgentSlow:
		who := "the agent"
		if e.Hub {
			who = "the hub"
		}
		return fmt.Sprintf("%s runs and was reached, but did not answer within the check's timeout (an agent lists its host's sockets with their processes): check again with a longer --timeout; %s", who, there)
	case AgentUnauthorized:
		return fmt.Sprintf("use the token the agent was started with (--token-file or REACH_TOKEN) and, if it requires mTLS, --agent-cert and --agent-key signed by its CA; %s", there)
	case AgentRateLimited:
		return fmt.Sprintf("the agent limits evidence queries (5 a second by default): check again in a moment; %s", there)
	case AgentNone:
		return fmt.Sprintf("run reach agent on %s with --advertise (or give its hosts entry in the hub config an agent: URL), or pass --agent URL; %s", host, there)
	case AgentWrongHost:
		return fmt.Sprintf("--agent names one host's agent: use --hub to ask the agent of each address's host, %s", there)
	}
	return fmt.Sprintf("see the error; %s", there)
}

// askAgents asks Options.Remote about addresses idx, all at once, each
// bounded by the probe timeout so the checks after them keep their share
// of the deadline. An agent that fails costs only its own address.
func askAgents(ctx context.Context, s *State, idx []int) {
	each(len(idx), func(j int) {
		i := idx[j]
		ctx, cancel := context.WithTimeout(ctx, s.Options.timeout())
		defer cancel()
		ev, err := s.Options.Remote.Evidence(ctx, s.addrPort(i))
		switch {
		case err != nil:
			s.Agents[i] = asAgentError(err)
		case len(s.Addrs) > 1 && len(ev.Addresses) > 0 && !ev.has(s.Addrs[i]):
			// One agent asked about a name's every address: its answer
			// says nothing about the hosts it does not run on.
			s.Agents[i] = &AgentError{Answered: ev.Host, Failure: AgentWrongHost,
				Err: fmt.Errorf("%s is not one of its addresses (%s)", s.Addrs[i], prefixes(ev.Addresses))}
		default:
			s.Hosts[i] = &ev
		}
	})
}

// has reports whether addr is one of the host's own addresses.
func (ev *HostEvidence) has(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range ev.Addresses {
		if p.Addr().Unmap().WithZone("") == addr {
			return true
		}
	}
	return false
}

func prefixes(ps []netip.Prefix) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Addr().String())
	}
	return strings.Join(out, ", ")
}
