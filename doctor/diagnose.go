package doctor

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reach-tools/reach/probe"
)

// priority orders causes with equal confidence: what stops a packet first
// (this host, the name, the route, a firewall) explains what follows.
var priority = []Cause{LocalError, DNS, NoRoute, ConntrackFull, NoEndpoints, FirewallReject, FirewallDrop,
	ServerHung, Overloaded, NATTargetGone, ProxyBackendDown, PublishedOnLoopback, NATMismatch, LoopbackOnly,
	AddressFamilyMismatch, WrongPort, NotPublished, NotListening, HostDown, ResetByPeer, ClosedByPeer,
	WrongProtocol, TLSExpired, TLSNameMismatch, TLSUntrusted, TLSFailed, HostBlocked, TooManyConnections,
	NotReady, AppError}

func rank(c Confidence) int {
	switch c {
	case Confirmed:
		return 0
	case Likely:
		return 1
	}
	return 2
}

// diagnose turns the evidence and the checks' findings into a report.
func diagnose(s *State, findings []Finding) *Report {
	r := &Report{Target: cmp.Or(s.Options.Name, s.Target.String()), Findings: []Finding{}, Vantage: s.Options.Vantage}
	for i := range s.Addrs {
		ar := AddrReport{Addr: s.addrPort(i).String(), Class: s.Primary(i)}
		if i < len(s.Probes) {
			for _, p := range s.Probes[i] {
				ar.Probes = append(ar.Probes, string(p.Class))
				ar.Intermittent = ar.Intermittent || p.Class != s.Probes[i][0].Class
			}
			if len(s.Probes[i]) > 0 {
				ar.RTTMS = ms(s.Probes[i][0].RTT)
			}
		}
		switch h := s.host(i); {
		case h != nil:
			ar.Evidence = &EvidenceSource{From: h.Host}
		case i < len(s.Agents) && s.Agents[i] != nil:
			ae := s.Agents[i]
			ar.Evidence = &EvidenceSource{From: ae.Who(), Failure: ae.Failure, Error: ae.Err.Error(), Fix: ae.fix(s.addrPort(i))}
		}
		if i < len(s.Paths) {
			ar.Paths = s.Paths[i]
		}
		if i < len(s.Layers) && s.Layers[i] != nil {
			ar.TLS, ar.App = s.Layers[i].TLS, s.Layers[i].App
		}
		r.Addresses = append(r.Addresses, ar)
		if ar.Class != probe.Open && ar.Class != "" && !settled(findings, s.label(i)) {
			inferred, next := infer(s, i, ar.Class)
			findings = append(findings, inferred...)
			r.Next = append(r.Next, next...)
		}
	}
	findings = merge(findings)
	if v := s.Options.Vantage; v != nil {
		for i := range findings {
			findings[i].Evidence += " (seen from " + v.Short() + ")"
		}
	}
	// Confirmed causes in priority order; guesses keep infer's order, which
	// is their likelihood.
	slices.SortStableFunc(findings, func(a, b Finding) int {
		if c := cmp.Compare(rank(a.Confidence), rank(b.Confidence)); c != 0 || a.Confidence != Confirmed {
			return c
		}
		return cmp.Compare(slices.Index(priority, a.Cause), slices.Index(priority, b.Cause))
	})
	r.Findings = append(r.Findings, findings...)
	r.Next = slices.Compact(r.Next)

	blocked := map[string]bool{} // addresses that connect but cannot be served
	for _, f := range findings {
		if f.Confidence == Confirmed && (f.Cause == ServerHung || f.Cause == Overloaded ||
			f.Cause == ResetByPeer || f.Cause == ClosedByPeer) {
			blocked[f.Addr] = true
		}
	}
	for i, l := range s.Layers {
		// A layer above TCP that was not ready: the address connects but
		// does not serve what the target asks for, whatever the finding's
		// confidence in why.
		if l != nil && !l.Ready() {
			blocked[s.label(i)] = true
		}
	}
	r.Class = probe.Open
	for i, ar := range r.Addresses {
		if ar.Class == probe.Open && !blocked[s.label(i)] {
			r.Reachable = true
		} else if r.Class == probe.Open {
			r.Class = ar.Class
		}
	}
	if !s.LookupOK {
		r.Class = probe.DNS
	}
	switch {
	case len(findings) > 0:
		r.Cause, r.Confidence = findings[0].Cause, findings[0].Confidence
	case r.Reachable:
		r.Cause, r.Confidence = Reachable, Confirmed
	default:
		r.Cause, r.Confidence = Unknown, Possible
	}
	r.Verdict = verdict(s, r)
	for _, ar := range r.Addresses {
		if ar.Intermittent {
			r.Verdict += fmt.Sprintf("; %s is intermittent: %s", ar.Addr, strings.Join(ar.Probes, ", "))
		}
	}
	return r
}

// settled reports whether the host's own evidence explains addr, so the
// client's guesses would only blur it: a confirmed finding, or wrong-port,
// which only a socket table gives (it is likely, not confirmed, because it
// guesses the user's intent, not because evidence is missing).
func settled(fs []Finding, addr string) bool {
	for _, f := range fs {
		if (f.Confidence == Confirmed || f.Cause == WrongPort || f.settles) && f.Addr == addr {
			return true
		}
	}
	return false
}

// merge keeps one finding per cause and address, the most certain (or, as
// certain, one that refines it), with the other findings' evidence appended.
func merge(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		j := slices.IndexFunc(out, func(o Finding) bool { return o.Cause == f.Cause && o.Addr == f.Addr })
		switch {
		case j < 0:
			out = append(out, f)
		case rank(f.Confidence) < rank(out[j].Confidence):
			if !strings.Contains(f.Evidence, out[j].Evidence) {
				f.Evidence += "; " + out[j].Evidence
			}
			out[j] = f
		case f.refines && rank(f.Confidence) == rank(out[j].Confidence):
			// As certain, and it names the cause more precisely: its
			// issue and fix, after the evidence already there.
			if !strings.Contains(out[j].Evidence, f.Evidence) {
				f.Evidence = out[j].Evidence + "; " + f.Evidence
			}
			out[j] = f
		case !strings.Contains(out[j].Evidence, f.Evidence):
			out[j].Evidence += "; " + f.Evidence
		}
	}
	return out
}

func verdict(s *State, r *Report) string {
	t := r.Target
	from := ""
	if v := s.Options.Vantage; v != nil {
		from = " from " + v.Short()
	}
	issue := ""
	if len(r.Findings) > 0 {
		issue = r.Findings[0].Issue
		if a := r.Findings[0].Addr; a != "" {
			issue = a + ": " + issue
		}
	}
	switch {
	case r.Reachable && r.Cause == Reachable:
		return fmt.Sprintf("%s is reachable%s (%s)", t, from, describeOpen(s))
	case r.Reachable:
		return fmt.Sprintf("%s is reachable%s on some addresses only: %s (%s, %s)", t, from, issue, r.Cause, r.Confidence)
	case len(r.Findings) > 0 && r.Class == probe.Open:
		return fmt.Sprintf("%s is not reachable%s: the handshake completes, but: %s (%s, %s)", t, from, issue, r.Cause, r.Confidence)
	case len(r.Findings) > 0:
		return fmt.Sprintf("%s is not reachable%s: %s — %s (%s, %s)", t, from, r.Class, issue, r.Cause, r.Confidence)
	}
	return fmt.Sprintf("%s is not reachable%s: %s — %s", t, from, r.Class, r.Class.Explain())
}

func describeOpen(s *State) string {
	for i := range s.Addrs {
		if s.Primary(i) != probe.Open {
			continue
		}
		d := fmt.Sprintf("connected to %s in %s", s.addrPort(i), round(s.Probes[i][0].RTT))
		if i < len(s.Layers) && s.Layers[i] != nil {
			d += "; " + describeLayers(s.Layers[i], s.Options.WarnDays)
		}
		if i < len(s.Paths) && len(s.Paths[i]) > 0 {
			var ps []string
			for _, p := range s.Paths[i] {
				ps = append(ps, p.Text)
			}
			return d + "; " + strings.Join(ps, "; ")
		}
		if h := s.host(i); h != nil {
			for _, sk := range h.Listening {
				if sk.Local.Port() == s.Target.Port && accepts(sk, s.Addrs[i]) {
					d += "; " + sk.Owner() + " listens on " + sk.Local.String()
					break
				}
			}
		}
		return d
	}
	return "open"
}

// infer explains a failure the client saw when no evidence from the target
// host names the cause: the possible causes, most likely first, and what
// would tell them apart.
func infer(s *State, i int, c probe.Class) ([]Finding, []string) {
	ap, host, port := s.addrPort(i), s.Addrs[i], s.Target.Port
	label := s.label(i)
	var echoed, echoKnown, onLink bool
	if i < len(s.Echo) {
		echoed, echoKnown = s.Echo[i].Replied, s.Echo[i].Skipped == "" && s.Echo[i].Err == nil
	}
	dev := ""
	if i < len(s.Routes) && s.Routes[i].Err == nil && s.Routes[i].Route.Type == "unicast" && !s.Routes[i].Route.Gateway.IsValid() {
		onLink = true
		dev = fmt.Sprintf(" (on-link, dev %s)", s.Routes[i].Dev)
	}
	pathNote, pathReached := "", false
	if i < len(s.Path) {
		if last, ok := lastAnswer(s.Path[i]); ok && last.Reached {
			pathReached = true
			pathNote = fmt.Sprintf("; a UDP path probe reached %s at hop %d (port unreachable), so the host is up", host, last.TTL)
		} else if ok {
			pathNote = fmt.Sprintf("; the path probe's last answer came from %s at hop %d, nothing beyond", last.From, last.TTL)
		} else if len(s.Path[i]) > 0 {
			pathNote = "; no hop of the path probe answered"
		}
	}
	askHost := fmt.Sprintf("run `reach check %s` on %s itself, or ask the reach agent there (reach check %s --agent URL): its socket table and firewall rules tell these apart", ap, host, ap)
	if i < len(s.Agents) && s.Agents[i] != nil {
		ae := s.Agents[i]
		askHost = fmt.Sprintf("%s gave no evidence for %s (%s, see the host check): %s; its socket table and firewall rules tell these apart", cmp.Or(ae.Who(), "the agent"), host, ae.Failure, ae.fix(ap))
	}
	f := func(cause Cause, conf Confidence, issue, evidence, fix string) Finding {
		return Finding{Cause: cause, Confidence: conf, Issue: issue, Evidence: evidence, Fix: fix, Addr: label}
	}
	if f, ok := icmpReject(s, i, c); ok {
		return []Finding{f}, []string{askHost}
	}
	switch c {
	case probe.Refused:
		seen := fmt.Sprintf("%s answered the SYN with a reset: the host is up, nothing accepted on port %d", host, port)
		return []Finding{
			f(NotListening, Likely, fmt.Sprintf("Nothing listens on port %d (most likely)", port), seen,
				fmt.Sprintf("start the server on %s; `reach ports --port %d` there shows whether anything listens", host, port)),
			f(WrongPort, Possible, "The server listens on another port or address (127.0.0.1 only, IPv6 only)",
				"a server bound elsewhere makes the host reset in the same way",
				fmt.Sprintf("on %s, `reach ports --process NAME` shows where the server listens; fix its listen address or the port you use", host)),
			f(FirewallReject, Possible, "A firewall rejects the connection",
				"a REJECT rule (tcp-reset or port-unreachable) looks exactly like a closed port from here",
				fmt.Sprintf("on %s, `reach check %s` quotes the matching rule (or read nft list ruleset / iptables-save)", host, ap)),
		}, []string{askHost}
	case probe.Timeout:
		drop := f(FirewallDrop, Possible, "A firewall drops the packets",
			fmt.Sprintf("no answer at all to SYNs for port %d within %v", port, s.Options.timeout()),
			fmt.Sprintf("find the DROP rule on %s or on the path (reach check there quotes it); allow tcp port %d", host, port))
		full := f(Overloaded, Possible, "The server's accept queue is full",
			"a listener whose queue is full drops new SYNs silently, like a firewall",
			fmt.Sprintf("on %s, `reach ports --port %d` shows recv-q against the backlog", host, port))
		down := f(HostDown, Possible, "The host is down",
			fmt.Sprintf("no answer to SYNs%s", map[bool]string{true: " and no echo reply", false: ""}[echoKnown && !echoed]),
			fmt.Sprintf("check that %s is powered and has that address (console, hypervisor); see the path check for the last hop that answered", host))
		next := []string{"compare with another port on the same host (e.g. reach check " + host.String() + ":22): if that answers, the host is up and port " + fmt.Sprint(port) + " is filtered"}
		// What the target host itself showed rules some guesses out.
		h := s.host(i)
		seen := h != nil && i < len(s.Local) && !s.Local[i]
		if !seen {
			next = append([]string{askHost}, next...)
		}
		var others []Finding
		if !seen || !queueOK(h, ap) {
			others = append(others, full)
		}
		if seen && h.Firewall {
			// The target's own rules were read and none drops it.
			pathNote += fmt.Sprintf("; %s reports no rule of its own that drops it", h.Host)
			drop.Issue = "A firewall on the path drops the packets"
			drop.Fix = fmt.Sprintf("look at the routers and filters between here and %s (network ACLs, cloud security groups); allow tcp port %d", host, port)
		}
		drop.Evidence += pathNote
		down.Evidence += pathNote
		switch {
		case echoed || pathReached || seen:
			drop.Confidence = Likely
			if echoed || pathReached {
				how := "answers ping"
				if !echoed {
					how = "answers UDP probes"
				}
				drop.Evidence = fmt.Sprintf("%s %s, yet SYNs to port %d get no answer within %v: a DROP rule does that%s", host, how, port, s.Options.timeout(), pathNote)
			}
			return append([]Finding{drop}, others...), next
		case echoKnown && onLink:
			down.Confidence = Likely
			down.Evidence = fmt.Sprintf("%s is on this link%s, but answers neither ping nor SYN", host, dev)
			return append([]Finding{down, drop}, others...), next
		default:
			drop.Confidence = Likely
			return append([]Finding{drop, down}, others...), next
		}
	case probe.HostUnreachable:
		down := f(HostDown, Likely, "The host is down or not on the link",
			fmt.Sprintf("connect to %s: no route to host (EHOSTUNREACH)", ap),
			fmt.Sprintf("check that %s is up and has that address; check the gateway's view (ip neigh, arp)", host))
		if onLink && echoKnown && !echoed {
			down.Confidence = Confirmed
			down.Evidence = fmt.Sprintf("%s is on this link%s, but neighbour discovery got no answer (EHOSTUNREACH) and it answers no ping", host, dev)
		}
		return []Finding{down, f(FirewallReject, Possible, "A firewall rejects with host-unreachable or admin-prohibited",
			"an ICMP host-unreachable or admin-prohibited reply makes connect fail the same way",
			fmt.Sprintf("look for a REJECT rule on %s or a router on the path", host))}, []string{askHost}
	}
	return nil, nil
}

// queueOK reports whether ev shows a listener for ap whose accept queue has room.
func queueOK(ev *HostEvidence, ap netip.AddrPort) bool {
	for _, sk := range ev.Listening {
		if sk.Local.Port() == ap.Port() && accepts(sk, ap.Addr()) && sk.SendQ > 0 && sk.RecvQ <= sk.SendQ {
			return true
		}
	}
	return false
}

// icmpReject is what the ICMP error behind a failure says on its own, when
// the target host gave no evidence: a TCP port without a listener answers
// with a reset, never with ICMP port-unreachable, and a host that is down
// sends no prohibition, so either is a firewall's REJECT (iptables' default
// reject type, firewalld's icmp-host-prohibited). With the host's evidence
// its firewall check decides instead.
func icmpReject(s *State, i int, c probe.Class) (Finding, bool) {
	if s.host(i) != nil || i >= len(s.Probes) {
		return Finding{}, false
	}
	for _, r := range s.Probes[i] {
		if r.Class != c || r.ICMP == nil {
			continue
		}
		k := r.ICMP.Kind()
		var how, why string
		switch {
		case c == probe.Refused && k == probe.ICMPPortUnreachable:
			how, why = "refused", "a TCP port without a listener answers with a reset"
		case c == probe.HostUnreachable && k.Prohibited():
			how, why = "host-unreachable", "a host that is down or absent sends no prohibition"
		default:
			continue
		}
		from := "the path"
		if r.ICMP.From.IsValid() {
			from = r.ICMP.From.String()
		}
		return Finding{Cause: FirewallReject, Confidence: Likely, Addr: s.label(i),
			Issue: "A firewall rejects the connection",
			Evidence: fmt.Sprintf("%s by %v — %s, so a firewall rejected the SYN (the ICMP "+
				"came %s after the SYN)", how, r.ICMP, why, round(r.RTT)),
			Fix: fmt.Sprintf("find the REJECT rule on %s (reach check there quotes it, or read "+
				"nft list ruleset / iptables-save) and allow tcp port %d", from, s.Target.Port)}, true
	}
	return Finding{}, false
}
