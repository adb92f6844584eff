package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// NATCheck follows the connection past the target host's own sockets:
// through its nat rules (Docker's DNAT, kube-proxy's Services, REDIRECT)
// and userland proxies, into the namespace that has the translated address
// (a container, a pod), and says what listens there, on which address.
var NATCheck = CheckFunc{
	CheckName: "nat",
	ReadsFrom: []string{"dns", "tcp", "host"}, // addresses; classes; the hosts' rules, namespaces, proxies
	Fn:        checkNAT,
}

// Path is where a connection to one address goes, as the target host's
// rules and proxies send it: the report shows it so people learn where
// their traffic goes, also when it arrives.
type Path struct {
	From netip.AddrPort `json:"from"` // the address dialled
	Hops []Hop          `json:"hops"`
	// To is where it ends; Namespace and Container who has that address,
	// when not the host itself, and Listener what takes it there.
	To        netip.AddrPort     `json:"to"`
	Namespace *sockets.Namespace `json:"namespace,omitempty"`
	Container *sockets.Container `json:"container,omitempty"`
	Listener  string             `json:"listener,omitempty"`
	// Chance is this path's share when the rules split connections
	// (a Service's endpoints); 1 otherwise.
	Chance float64 `json:"chance"`
	// Assumed are the conditions the walk could not decide that this
	// path takes one way; empty when it is certain.
	Assumed []string `json:"assumed,omitempty"`
	Text    string   `json:"text"` // all of it, on one line
}

// Hop is one rule or proxy that sent the connection on.
type Hop struct {
	// Kind is "dnat", "redirect", "proxy", "reject" or "drop".
	Kind  string           `json:"kind"`
	Rule  *firewall.Rule   `json:"rule,omitempty"`
	Proxy *sockets.Forward `json:"proxy,omitempty"`
	To    netip.AddrPort   `json:"to,omitzero"`
}

func (h Hop) String() string {
	switch {
	case h.Proxy != nil:
		return fmt.Sprintf("%s (pid %d)", h.Proxy.Proxy, h.Proxy.PID)
	case h.Rule != nil:
		return fmt.Sprintf("%s (%s %s/%s: %s)", strings.ToUpper(h.Kind), h.Rule.Source, h.Rule.Table, h.Rule.Chain, h.Rule.Text)
	}
	return strings.ToUpper(h.Kind)
}

// text writes the path on one line: "198.18.0.2:8080 → DNAT (rule) →
// 198.19.0.2:80 in container docker 3f2a1b4c5d6e (netns of pid 4242)".
func (p *Path) text(end string) {
	parts := []string{p.From.String()}
	for _, h := range p.Hops {
		parts = append(parts, h.String())
	}
	last := p.To.String()
	if len(p.Hops) > 0 && p.Hops[len(p.Hops)-1].Kind != "reject" && p.Hops[len(p.Hops)-1].Kind != "drop" {
		last += in(p.Namespace, p.Container)
		if end != "" {
			last += ", " + end
		}
		parts = append(parts, last)
	}
	p.Text = strings.Join(parts, " → ")
	if p.Chance > 0 && p.Chance < 1 {
		p.Text += fmt.Sprintf(" (%.0f%% of connections)", p.Chance*100)
	}
	if len(p.Assumed) > 0 {
		p.Text += " (" + strings.Join(p.Assumed, ", ") + ")"
	}
}

// in names who has an address: " in container docker 3f2a1b4c5d6e (netns
// of pid 4242)", " in network namespace web (pid 4242)", or "" for the
// host itself.
func in(ns *sockets.Namespace, c *sockets.Container) string {
	if ns == nil {
		return ""
	}
	netns := "netns of pid " + strconv.Itoa(ns.PID)
	switch {
	case ns.Name != "" && ns.PID != 0:
		netns = "netns " + ns.Name + ", pid " + strconv.Itoa(ns.PID)
	case ns.PID == 0:
		netns = "netns " + ns.String()
	}
	if c == nil {
		if ns.Name != "" && ns.PID != 0 {
			return " in network namespace " + ns.Name + " (pid " + strconv.Itoa(ns.PID) + ")"
		}
		return " in network namespace " + strings.TrimPrefix(netns, "netns ")
	}
	what := "container " + c.Short()
	if c.Pod != "" {
		what += " of pod " + c.Pod
	}
	return " in " + what + " (" + netns + ")"
}

func checkNAT(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	res := CheckResult{Status: Pass}
	var parts []string
	s.Paths = make([][]Path, len(s.Addrs))
	for i := range s.Addrs {
		h := s.host(i)
		if h == nil {
			continue
		}
		label := s.prefix(i)
		v := examine(h, s.addrPort(i), s.Primary(i), h == s.Client)
		s.Paths[i] = v.paths
		for j := range v.findings {
			v.findings[j].Addr = s.label(i)
			if h != s.Client {
				v.findings[j].Evidence += " (reported by " + h.Host + ")"
			}
		}
		if len(v.findings) > 0 {
			res.Status = Fail
		}
		res.Findings = append(res.Findings, v.findings...)
		parts = append(parts, label+v.detail)
	}
	if len(parts) == 0 {
		return CheckResult{Status: Skip, Detail: "the target is another host: its rules and containers cannot be seen from here"}
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}

// natView is what a host's rules, proxies and containers' namespaces say
// about a connection to one of its addresses.
type natView struct {
	detail   string
	paths    []Path
	findings []Finding
	// host says the connection may end at the host's own sockets on the
	// address dialled, no proxy between: the sockets check's analysis
	// applies, its findings' confidence at most capAll (when set), and
	// for not-listening at most capNL, for the reasons given.
	host              bool
	capAll, capNL     Confidence
	capAllWhy, capNLW string
}

// capped lowers a sockets finding to what v allows, saying why.
func (v *natView) capped(f Finding) Finding {
	orig := f.Confidence
	for _, c := range []struct {
		conf Confidence
		why  string
		ok   bool
	}{{v.capAll, v.capAllWhy, true}, {v.capNL, v.capNLW, f.Cause == NotListening}} {
		if c.conf != "" && c.ok && rank(orig) < rank(c.conf) {
			if rank(c.conf) > rank(f.Confidence) {
				f.Confidence = c.conf
			}
			f.Evidence += "; but " + c.why
		}
	}
	return f
}

// examine follows a connection to ap through host h's rules and proxies.
// local says the client is on h itself.
func examine(h *HostEvidence, ap netip.AddrPort, class probe.Class, local bool) natView {
	v := natView{}
	p := h.natPath(ap, hookOf(local))
	var doubts []string
	switch {
	case p == nil && h.ruleset == nil && !h.Firewall:
		doubts = append(doubts, fmt.Sprintf("the nat rules of %s were not read (run as root to read them): a DNAT rule may send the connection elsewhere", h.Host))
	case p == nil:
		doubts = append(doubts, fmt.Sprintf("%s did not walk its nat rules (a reach agent older than this check?): a DNAT rule may send the connection elsewhere", h.Host))
	default:
		if len(p.MayMatch) > 0 {
			doubts = append(doubts, "rules whose conditions could not be checked may send it elsewhere: "+strings.Join(p.MayMatch, "; "))
		}
		if len(p.Problems) > 0 {
			doubts = append(doubts, "the walk through the rules stopped: "+strings.Join(p.Problems, "; "))
		}
	}
	if len(h.NATNotes) > 0 {
		doubts = append(doubts, "some rules could not be read: "+strings.Join(h.NATNotes, "; "))
	}
	if len(doubts) > 0 {
		v.capAll, v.capAllWhy = Likely, strings.Join(doubts, "; ")
	}
	switch {
	case !h.PeersSeen:
		v.capNL, v.capNLW = Likely, fmt.Sprintf("the network namespaces of the containers on %s were not looked at: the server may be in one", h.Host)
	case h.PeersNotSeen > 0:
		v.capNL, v.capNLW = Likely, fmt.Sprintf("%s of containers on %s could not be looked at (see the notes): the server may be in one", count(h.PeersNotSeen, "network namespace"), h.Host)
	}
	e := examiner{h: h, ap: ap, class: class, v: &v, certain: len(doubts) == 0}
	if p == nil {
		e.atHost(Path{From: ap, To: ap, Chance: 1}, "")
	} else {
		for _, o := range p.Outcomes {
			e.outcome(o, len(p.Outcomes))
		}
	}
	e.finish()
	for i, f := range v.findings {
		if !e.certain && !strings.Contains(f.Evidence, v.capAllWhy) {
			v.findings[i].Evidence += "; not certain: " + v.capAllWhy
		}
		v.findings[i].settles = true
	}
	return v
}

// examiner examines the ways a connection to ap may go.
type examiner struct {
	h       *HostEvidence
	ap      netip.AddrPort
	class   probe.Class
	v       *natView
	certain bool // nothing the walk could not decide
	details []string
}

// conf is the confidence evidence about one way the connection may go
// gives: confirmed when the walk was certain, this is the only way, and
// the probe saw what that way does (expect; any when empty).
func (e *examiner) conf(path Path, expect ...probe.Class) Confidence {
	if !e.certain || path.Chance < 1 || len(path.Assumed) > 0 || len(expect) > 0 && !slices.Contains(expect, e.class) {
		return Likely
	}
	return Confirmed
}

func (e *examiner) outcome(o NATOutcome, ways int) {
	path := Path{From: e.ap, To: o.Dst, Chance: o.Probability, Assumed: o.Assumed}
	if ways == 1 && len(o.Assumed) == 0 {
		path.Chance = 1
	}
	switch {
	case o.Verdict == "unknown":
		e.details = append(e.details, fmt.Sprintf("%s: the walk could not follow one way (%s)", e.ap, strings.Join(o.Steps, ", ")))
	case o.Verdict == "reject" || o.Verdict == "drop":
		if o.Translation != nil {
			path.Hops = append(path.Hops, Hop{Kind: o.Translation.Verdict, Rule: o.Translation, To: o.Dst})
		}
		path.Hops = append(path.Hops, Hop{Kind: o.Verdict, Rule: o.Decider})
		path.text("")
		e.v.paths = append(e.v.paths, path)
		switch {
		case noEndpoints(o):
			e.noEndpoints(path, o)
		case o.Translation != nil:
			// The firewall check judges the packet as sent; after the
			// translation only the walk sees it.
			cause, issue, expect := FirewallDrop, "A firewall drops the translated connection", []probe.Class{probe.Timeout}
			if o.Verdict == "reject" {
				cause, issue, expect = FirewallReject, "A firewall rejects the translated connection", []probe.Class{probe.Refused, probe.HostUnreachable}
			}
			e.add(Finding{Cause: cause, Confidence: e.conf(path, expect...), Issue: issue, Evidence: path.Text,
				Fix: fmt.Sprintf("allow tcp to %s in the chain that decides it (%s %s/%s), or narrow that rule", o.Dst, o.Decider.Source, o.Decider.Table, o.Decider.Chain)})
		default:
			e.v.host = true // a rule before any translation: the firewall check quotes it
		}
	case o.Translation == nil && o.Local && o.Skipped != nil && !e.hostTakes(o.Dst):
		e.noHairpin(path, o)
	case o.Translation == nil && o.Local:
		e.atHost(path, "")
	case o.Translation == nil:
		e.details = append(e.details, fmt.Sprintf("%s is not this host's address: its rules forward it untranslated", o.Dst))
	default:
		path.Hops = append(path.Hops, Hop{Kind: o.Translation.Verdict, Rule: o.Translation, To: o.Dst})
		if o.Local {
			e.translatedHere(path, o)
			return
		}
		e.target(path, o, nil)
	}
}

// add records a finding (once per cause: a Service's endpoints that fail
// alike make one).
func (e *examiner) add(f Finding) {
	for i, g := range e.v.findings {
		if g.Cause == f.Cause {
			if !strings.Contains(g.Evidence, f.Evidence) {
				e.v.findings[i].Evidence += "; " + f.Evidence
			}
			return
		}
	}
	e.v.findings = append(e.v.findings, f)
}

// noEndpoints reports whether kube-proxy rejected the connection for a
// Service without ready endpoints: its iptables rule says so in its
// comment, its nftables mode by the map the packet was found in.
func noEndpoints(o NATOutcome) bool {
	if o.Verdict != "reject" && o.Verdict != "drop" {
		return false
	}
	if strings.Contains(o.Comment, "has no endpoints") {
		return true
	}
	return slices.ContainsFunc(o.Steps, func(s string) bool {
		return strings.Contains(s, "@no-endpoint-services:") || strings.Contains(s, "@no-endpoint-nodeports:")
	})
}

func (e *examiner) noEndpoints(path Path, o NATOutcome) {
	svc := strings.TrimSuffix(o.Comment, " has no endpoints")
	quote := fmt.Sprintf("%s %s/%s: %s", o.Decider.Source, o.Decider.Table, o.Decider.Chain, o.Decider.Text)
	if strings.Contains(o.Comment, "has no endpoints") {
		quote += fmt.Sprintf(" (%q)", o.Comment)
	} else {
		for _, s := range o.Steps {
			if strings.Contains(s, "@no-endpoint-") {
				quote = s
				if o.Comment != "" {
					quote += fmt.Sprintf(" (element of Service %q)", o.Comment)
				}
			}
		}
	}
	what := "the Service"
	if svc != "" {
		what = "Service " + svc
	}
	e.add(Finding{Cause: NoEndpoints, Confidence: e.conf(path, probe.Refused, probe.HostUnreachable),
		Issue:    fmt.Sprintf("%s has no ready endpoints: kube-proxy rejects its connections", strings.ToUpper(what[:1])+what[1:]),
		Evidence: path.Text + "; kube-proxy's rule: " + quote,
		Fix:      fmt.Sprintf("make %s's pods ready: kubectl get endpointslices -l kubernetes.io/service-name=NAME shows none ready; check that its selector matches the pods' labels (kubectl describe service) and why they are not ready (kubectl describe pod, readiness probe)", what)})
	e.v.host = false
}

// atHost examines a connection that arrives, untranslated, at the host's
// own sockets on path.To: a userland proxy there, a port published on
// loopback only, a container not published.
func (e *examiner) atHost(path Path, via string) {
	h, ap := e.h, path.To
	var taking []sockets.Socket
	for _, sk := range h.Listening {
		if sk.Local.Port() == ap.Port() && accepts(sk, ap.Addr()) {
			taking = append(taking, sk)
		}
	}
	if len(taking) > 0 {
		if f := h.proxyFor(taking[0]); f != nil {
			path.Hops = append(path.Hops, Hop{Kind: "proxy", Proxy: f, To: f.To})
			path.To = f.To
			e.target(path, NATOutcome{Dst: f.To}, f)
			return
		}
		e.v.host = true
		if len(path.Hops) > 0 {
			path.Listener = describeListeners(taking[:1])
			path.text(path.Listener)
			e.v.paths = append(e.v.paths, path)
		}
		return
	}
	e.v.host = true
	if !ap.Addr().IsLoopback() && e.publishedOnLoopback(ap) {
		return
	}
	e.notPublished(ap)
}

// hostTakes reports whether a listener of the host takes ap.
func (e *examiner) hostTakes(ap netip.AddrPort) bool {
	return slices.ContainsFunc(e.h.Listening, func(sk sockets.Socket) bool {
		return sk.Local.Port() == ap.Port() && accepts(sk, ap.Addr())
	})
}

// noHairpin explains a connection a RETURN rule kept from the DNAT that
// publishes the port: a client in a container to its own host's published
// port, without docker-proxy (no hairpin from the bridge).
func (e *examiner) noHairpin(path Path, o NATOutcome) {
	e.v.host = true
	to := o.Skipped.To
	path.Hops = append(path.Hops, Hop{Kind: "return", Rule: o.Return})
	path.text("")
	e.v.paths = append(e.v.paths, path)
	quote := func(r *firewall.Rule) string { return fmt.Sprintf("%s %s/%s: %s", r.Source, r.Table, r.Chain, r.Text) }
	e.add(Finding{Cause: NotPublished, Confidence: Likely,
		Issue: fmt.Sprintf("Port %d is published, but not to this client: a rule returns its connections before the DNAT (no hairpin NAT)", e.ap.Port()),
		Evidence: fmt.Sprintf("the connection arrives from %s's bridge side; %s returns it, so %s (to %s) is skipped and nothing on %s listens on port %d",
			e.h.Host, quote(o.Return), quote(o.Skipped), to, e.h.Host, e.ap.Port()),
		Fix: fmt.Sprintf("from the container, connect to the server directly at %s (or by its name on a shared network); or let the host forward it: run docker-proxy (dockerd's userland proxy, --userland-proxy=true) or enable hairpin NAT for the bridge", to)})
	e.v.capNL, e.v.capNLW = Possible, "the port is published, but a rule returns this client's connections before its DNAT (see not-published)"
}

// proxyFor returns the userland proxy holding listener sk, nil when none.
func (ev *HostEvidence) proxyFor(sk sockets.Socket) *sockets.Forward {
	for _, p := range sk.Processes {
		for i, f := range ev.Proxies {
			if f.PID == p.PID && f.Listen.Port() == sk.Local.Port() {
				return &ev.Proxies[i]
			}
		}
	}
	return nil
}

// publishedOnLoopback finds a port published on the host's loopback only
// (docker run -p 127.0.0.1:PORT:...): a userland proxy there, or a DNAT
// rule for connections from the host to it.
func (e *examiner) publishedOnLoopback(ap netip.AddrPort) bool {
	h := e.h
	var path Path
	for i, f := range h.Proxies {
		if f.Listen.Port() == ap.Port() && f.Listen.Addr().IsLoopback() {
			path = Path{From: f.Listen, To: f.To, Chance: 1, Hops: []Hop{{Kind: "proxy", Proxy: &h.Proxies[i], To: f.To}}}
			break
		}
	}
	if len(path.Hops) == 0 {
		lo := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port())
		if !ap.Addr().Unmap().Is4() {
			lo = netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port())
		}
		p := h.natPath(lo, "output")
		if p == nil {
			return false
		}
		for _, o := range p.Outcomes {
			if o.Verdict == "accept" && o.Translation != nil && !o.Local {
				path = Path{From: lo, To: o.Dst, Chance: 1, Hops: []Hop{{Kind: o.Translation.Verdict, Rule: o.Translation, To: o.Dst}}}
				break
			}
		}
		if len(path.Hops) == 0 {
			return false
		}
	}
	peer := h.peerOwning(path.To.Addr())
	if peer != nil {
		path.Namespace = &peer.Namespace
		path.Container = containerOf(h, peer)
	}
	path.text("")
	e.v.paths = append(e.v.paths, path)
	conf := e.conf(path, probe.Refused)
	name := "it"
	if path.Container != nil {
		name = "container " + path.Container.Short()
	}
	fix := fmt.Sprintf("publish the port on every address, or on %s: -p %d:%d (not -p %s:%d:%d), then recreate %s; or connect from %s itself to %s",
		ap.Addr(), ap.Port(), path.To.Port(), path.From.Addr(), ap.Port(), path.To.Port(), name, e.h.Host, path.From)
	e.add(Finding{Cause: PublishedOnLoopback, Confidence: conf,
		Issue:    fmt.Sprintf("Port %d is published on %s's loopback only", ap.Port(), e.h.Host),
		Evidence: fmt.Sprintf("nothing takes %s (no rule translates it, nothing listens there); the port is published for %s only: %s", ap, path.From, path.Text),
		Fix:      fix})
	e.v.host = false
	return true
}

// notPublished finds servers in containers' namespaces on the port that
// no rule or proxy leads to.
func (e *examiner) notPublished(ap netip.AddrPort) {
	h := e.h
	var on []sockets.Socket
	for _, sk := range h.PeerListening {
		if sk.Local.Port() == ap.Port() && sk.Namespace != nil {
			on = append(on, sk)
		}
	}
	other := len(on) == 0
	if other {
		on = h.unled()
	}
	if len(on) == 0 {
		return
	}
	sk := on[0]
	c := sk.Container
	if c == nil {
		c = sk.Namespace.Container
	}
	where := in(sk.Namespace, c)
	at := sk.Local
	if p := h.peerOf(sk.Namespace); p != nil && at.Addr().IsUnspecified() {
		// The address it is reached at: IPv4 first (a [::] socket
		// takes both), as the host dialled.
		for _, a := range p.Addresses {
			if b := a.Addr(); !b.IsLoopback() && !b.IsLinkLocalUnicast() && (b.Is4() || at.Addr().Is6()) {
				if at.Addr().IsUnspecified() || at.Addr().Is6() && b.Is4() {
					at = netip.AddrPortFrom(b, at.Port())
				}
			}
		}
	}
	plat := platform(c, nil, h.bridgeOf(sk.Namespace))
	fix := fmt.Sprintf("forward the port to it (a DNAT rule or a proxy), or run the server in %s's own network namespace", h.Host)
	switch plat {
	case "docker", "podman":
		name := "the container"
		if c != nil {
			name = c.ID[:min(12, len(c.ID))]
		}
		fix = fmt.Sprintf("publish the port: recreate %s with %s run -p %d:%d (compose: ports: [\"%d:%d\"])", name, plat, ap.Port(), sk.Local.Port(), ap.Port(), sk.Local.Port())
	case "kubernetes":
		fix = fmt.Sprintf("expose the pod: a Service of type NodePort or LoadBalancer (kubectl expose), or a hostPort %d in its spec", ap.Port())
	}
	if sk.Local.Addr().IsLoopback() {
		fix += fmt.Sprintf("; and make the server listen on 0.0.0.0:%d: it listens on its own loopback only", sk.Local.Port())
	}
	ev := fmt.Sprintf("nothing listens on port %d on %s itself and no rule or proxy leads elsewhere; %s listens on %s%s", ap.Port(), h.Host, sk.Owner(), sk.Local, where)
	issue := fmt.Sprintf("Port %d is not published: the server listening on it is in a container", ap.Port())
	if other {
		// Not the same port: the server may be another one, but
		// nothing says the one asked for is not there.
		ev = fmt.Sprintf("nothing listens on port %d on %s itself, in its containers, and no rule or proxy leads elsewhere; %s listens on %s%s and nothing is published to it",
			ap.Port(), h.Host, sk.Owner(), at, where)
		issue = fmt.Sprintf("Port %d is not published: a server in a container listens on port %d, and no rule or proxy leads to it", ap.Port(), sk.Local.Port())
		if len(on) > 1 {
			ev += fmt.Sprintf(" (and %s not published)", count(len(on)-1, "more listener"))
		}
	} else if len(on) > 1 {
		ev += fmt.Sprintf(" (and %d more namespaces listen on port %d)", len(on)-1, ap.Port())
	}
	e.add(Finding{Cause: NotPublished, Confidence: Likely, Issue: issue, Evidence: ev, Fix: fix})
	if other {
		e.v.capNL, e.v.capNLW = Likely, fmt.Sprintf("%s listens on %s%s, which nothing is published to (see not-published)", sk.Owner(), at, where)
		return
	}
	e.v.capNL, e.v.capNLW = Possible, "a server in a container listens on that port (see not-published)"
}

// unled returns the listeners in the namespaces wired to the host that no
// DNAT rule or userland proxy of it leads to: servers in containers that
// were never published. A rule that names no port leads to every port.
func (ev *HostEvidence) unled() []sockets.Socket {
	if ev.ruleset == nil && ev.Firewall {
		return ev.Unpublished // an agent's answer: it read the rules
	}
	var to []netip.AddrPort
	for _, f := range ev.Proxies {
		to = append(to, f.To)
	}
	for _, p := range ev.NAT {
		for _, o := range p.Outcomes {
			if o.Translation != nil {
				to = append(to, o.Dst)
			}
		}
	}
	if ev.ruleset != nil {
		for _, t := range ev.ruleset.Tables {
			for _, c := range t.Chains {
				for _, r := range c.Rules {
					if r.Verdict != "dnat" {
						continue
					}
					if ap, err := netip.ParseAddrPort(r.To); err == nil {
						to = append(to, ap)
					} else if a, err := netip.ParseAddr(r.To); err == nil {
						to = append(to, netip.AddrPortFrom(a, 0))
					}
				}
			}
		}
	}
	var out []sockets.Socket
	for _, sk := range ev.PeerListening {
		if sk.Namespace == nil {
			continue
		}
		p := ev.peerOf(sk.Namespace)
		led := slices.ContainsFunc(to, func(t netip.AddrPort) bool {
			return (t.Port() == 0 || t.Port() == sk.Local.Port()) && p != nil && p.Has(t.Addr())
		})
		if !led {
			out = append(out, sk)
		}
	}
	return out
}

// peerOf returns the peer whose namespace is ns, nil when none.
func (ev *HostEvidence) peerOf(ns *sockets.Namespace) *sockets.Peer {
	for i, p := range ev.Peers {
		if ns != nil && p.Namespace.Inode == ns.Inode {
			return &ev.Peers[i]
		}
	}
	return nil
}

// translatedHere examines a connection translated to an address of the
// host itself (REDIRECT, or DNAT to one of its addresses).
func (e *examiner) translatedHere(path Path, o NATOutcome) {
	to := o.Dst
	if !to.Addr().IsValid() || to.Addr().IsUnspecified() {
		// REDIRECT from elsewhere: the interface's first address, which
		// the walk does not know; any listener on the port takes it
		// unless it is bound to another address.
		to = netip.AddrPortFrom(e.ap.Addr(), o.Dst.Port())
	}
	path.To = to
	var taking []sockets.Socket
	for _, sk := range e.h.Listening {
		if sk.Local.Port() == to.Port() && accepts(sk, to.Addr()) {
			taking = append(taking, sk)
		}
	}
	if len(taking) > 0 {
		if f := e.h.proxyFor(taking[0]); f != nil {
			path.Hops = append(path.Hops, Hop{Kind: "proxy", Proxy: f, To: f.To})
			path.To = f.To
			e.target(path, NATOutcome{Dst: f.To}, f)
			return
		}
		path.Listener = describeListeners(taking[:1])
		path.text(path.Listener)
		e.v.paths = append(e.v.paths, path)
		return
	}
	path.text("")
	e.v.paths = append(e.v.paths, path)
	_, fs := analyzeSockets(e.h, to, e.class)
	for _, f := range fs {
		f.Evidence = path.Text + "; " + f.Evidence
		if rank(f.Confidence) < rank(e.conf(path)) {
			f.Confidence = e.conf(path)
		}
		e.add(f)
	}
}

// target examines the end of a translation, or of a userland proxy when
// proxy is set: the namespace that has the address and what listens there.
func (e *examiner) target(path Path, o NATOutcome, proxy *sockets.Forward) {
	h, to := e.h, path.To
	peer := h.peerOwning(to.Addr())
	var fs []Finding
	// What the client sees when the end refuses: a reset, or through a
	// proxy, a connection accepted and then closed.
	expect := []probe.Class{probe.Refused}
	if proxy != nil {
		expect = []probe.Class{probe.ClosedByPeer, probe.Reset}
	}
	plat := platform(nil, o.Translation, "")
	if proxy != nil && proxy.Proxy == "docker-proxy" {
		plat = "docker"
	}
	switch {
	case peer == nil && !onLink(h, to.Addr()):
		path.text("another host")
		e.details = append(e.details, path.Text+": run reach check "+to.String()+" there, or ask its agent")
		e.v.paths = append(e.v.paths, path)
		return
	case peer == nil:
		path.text("which no network namespace of " + h.Host + " has")
		// Nobody answers the neighbour's solicitation: the client's SYN
		// gets a host-unreachable, or nothing at all.
		expect = []probe.Class{probe.HostUnreachable, probe.Timeout}
		if proxy != nil {
			expect = []probe.Class{probe.ClosedByPeer, probe.Reset, probe.Open}
		}
		conf := e.conf(path, expect...)
		seen := fmt.Sprintf("no network namespace wired to %s has %s (%s looked at)", h.Host, to.Addr(), count(len(h.Peers), "namespace"))
		if !h.PeersSeen || h.PeersNotSeen > 0 {
			conf = Likely
			seen = fmt.Sprintf("none of the %s of containers looked at has %s, but %s", count(len(h.Peers), "network namespace"), to.Addr(), strings.TrimPrefix(e.v.capNLW, "the "))
		}
		fix := "the container it led to is gone while its rule stayed: start it again, or remove the rule"
		switch plat {
		case "docker":
			fix = "the container is gone while its rule stayed: start it again (docker start NAME, docker compose up), or remove the stale rules (docker rm the container, or restart dockerd)"
		case "kubernetes":
			fix = "the endpoint pod is gone while kube-proxy's rule stayed: check kube-proxy's logs and that it runs (kubectl -n kube-system get pods), and the Service's endpoints (kubectl get endpointslices)"
		}
		fs = append(fs, Finding{Cause: NATTargetGone, Confidence: conf,
			Issue:    fmt.Sprintf("The connection is sent to %s, which is gone", to.Addr()),
			Evidence: path.Text + "; " + seen + ", yet it is on " + h.Host + "'s own subnet",
			Fix:      fix})
	default:
		path.Namespace = &peer.Namespace
		path.Container = containerOf(h, peer)
		if p := platform(path.Container, nil, peer.Bridge); p != "" {
			plat = p
		}
		fs = e.inPeer(&path, peer, plat, o)
	}
	if len(fs) == 0 {
		e.v.paths = append(e.v.paths, path)
		if proxy != nil {
			e.v.host = true // a healthy backend: the proxy's own behaviour is the sockets check's
		}
		return
	}
	e.v.paths = append(e.v.paths, path)
	for _, f := range fs {
		c := e.conf(path, expect...)
		if rank(f.Confidence) < rank(c) {
			f.Confidence = c
		}
		if proxy != nil {
			f = Finding{Cause: ProxyBackendDown, Confidence: f.Confidence,
				Issue: fmt.Sprintf("%s (pid %d) holds port %d and forwards to %s, which does not take connections: it accepts, then closes — %s",
					proxy.Proxy, proxy.PID, proxy.Listen.Port(), proxy.To, lowerFirst(f.Issue)),
				Evidence: f.Evidence, Fix: f.Fix}
		}
		e.add(f)
	}
}

// inPeer says what listens where the path ends, in peer's namespace; no
// findings when a listener takes it.
func (e *examiner) inPeer(path *Path, peer *sockets.Peer, plat string, o NATOutcome) []Finding {
	to := path.To
	var onPort, all, taking []sockets.Socket
	for _, sk := range e.h.PeerListening {
		if sk.Namespace == nil || sk.Namespace.Inode != peer.Namespace.Inode {
			continue
		}
		all = append(all, sk)
		if sk.Local.Port() == to.Port() {
			onPort = append(onPort, sk)
			if accepts(sk, to.Addr()) {
				taking = append(taking, sk)
			}
		}
	}
	who := strings.TrimPrefix(in(path.Namespace, path.Container), " in ")
	name := who
	if path.Container != nil {
		name = path.Container.ID[:min(12, len(path.Container.ID))]
	} else if peer.Namespace.Name != "" {
		name = peer.Namespace.Name
	}
	if len(taking) > 0 {
		path.Listener = describeListeners(taking[:1])
		path.text(path.Listener)
		return nil
	}
	if len(onPort) > 0 {
		path.Listener = describeListeners(onPort)
		path.text(path.Listener)
		if !slices.ContainsFunc(onPort, func(sk sockets.Socket) bool { return !sk.Local.Addr().IsLoopback() }) {
			return []Finding{{Cause: LoopbackOnly, Confidence: Confirmed,
				Issue:    fmt.Sprintf("The server in %s listens on its own loopback only", who),
				Evidence: path.Text + fmt.Sprintf("; inside %s, %s is its own loopback: nothing from outside it reaches that", name, onPort[0].Local.Addr()),
				Fix: fmt.Sprintf("make the server in %s listen on 0.0.0.0:%d (its listen or bind setting, e.g. --host 0.0.0.0) and restart it; 127.0.0.1 inside a container is not the host's loopback",
					name, to.Port())}}
		}
		return []Finding{{Cause: NotListening, Confidence: Confirmed,
			Issue:    fmt.Sprintf("The server in %s listens on another address", who),
			Evidence: path.Text + fmt.Sprintf("; the connection arrives for %s", to.Addr()),
			Fix:      fmt.Sprintf("make the server in %s listen on 0.0.0.0:%d (or %s) and restart it", name, to.Port(), to.Addr())}}
	}
	path.text("where nothing listens on port " + strconv.Itoa(int(to.Port())))
	if len(all) == 0 {
		fix := fmt.Sprintf("start the server in %s (its logs say why it is not listening)", name)
		switch plat {
		case "docker":
			fix = fmt.Sprintf("start the server in container %s: docker logs %s says why it is not listening", name, name)
		case "kubernetes":
			fix = "the pod's server is not listening: kubectl logs POD says why; until it is, its readiness probe should keep it out of the Service"
		}
		return []Finding{{Cause: NotListening, Confidence: Confirmed,
			Issue:    fmt.Sprintf("Nothing listens in %s", who),
			Evidence: path.Text + "; nothing listens there on any port", Fix: fix}}
	}
	var ports []string
	for _, sk := range all {
		p := strconv.Itoa(int(sk.Local.Port()))
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	fix := fmt.Sprintf("send the connection to the port the server listens on (%s), or make it listen on %d", strings.Join(ports, ", "), to.Port())
	switch plat {
	case "docker", "podman":
		fix = fmt.Sprintf("publish the port the server listens on: recreate the container with -p %d:%s (it is published to %d), or make the server listen on %d",
			e.ap.Port(), ports[0], to.Port(), to.Port())
	case "kubernetes":
		fix = fmt.Sprintf("set the Service's targetPort to %s (it is %d), or make the pod listen on %d", ports[0], to.Port(), to.Port())
	}
	return []Finding{{Cause: NATMismatch, Confidence: Confirmed,
		Issue:    fmt.Sprintf("The connection is sent to port %d of %s, which listens on %s", to.Port(), who, strings.Join(ports, ", ")),
		Evidence: path.Text + "; " + describeListeners(all), Fix: fix}}
}

// finish writes the check's detail.
func (e *examiner) finish() {
	var parts []string
	for _, p := range e.v.paths {
		parts = append(parts, p.Text)
	}
	parts = append(parts, e.details...)
	switch {
	case len(parts) == 0 && e.v.capAll != "":
		parts = append(parts, fmt.Sprintf("where %s goes is not known: %s", e.ap, e.v.capAllWhy))
	case len(parts) == 0:
		parts = append(parts, fmt.Sprintf("no rule or proxy of %s sends %s elsewhere", e.h.Host, e.ap))
	case e.v.capAll != "":
		parts = append(parts, "not certain: "+e.v.capAllWhy)
	}
	e.v.detail = strings.Join(parts, "; ")
}

// peerOwning returns the namespace wired to the host that has addr.
func (ev *HostEvidence) peerOwning(addr netip.Addr) *sockets.Peer {
	for i := range ev.Peers {
		if ev.Peers[i].Has(addr) {
			return &ev.Peers[i]
		}
	}
	return nil
}

// onLink reports whether addr is on the subnet of one of the host's own
// interfaces (a bridge's: where its containers are), not one of its own.
func onLink(ev *HostEvidence, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range ev.Addresses {
		if p.Addr().Unmap() != addr && !p.Addr().IsLoopback() && p.Bits() < p.Addr().BitLen() && p.Masked().Contains(addr) {
			return true
		}
	}
	return false
}

// containerOf is the container of a peer: its namespace's, or that of a
// process listening there.
func containerOf(ev *HostEvidence, p *sockets.Peer) *sockets.Container {
	if p.Namespace.Container != nil {
		return p.Namespace.Container
	}
	for _, sk := range ev.PeerListening {
		if sk.Namespace != nil && sk.Namespace.Inode == p.Namespace.Inode && sk.Container != nil {
			return sk.Container
		}
	}
	return nil
}

// platform guesses what set the path up, for the fix's words: "docker",
// "podman", "kubernetes", or "" when nothing tells.
func platform(c *sockets.Container, r *firewall.Rule, bridge string) string {
	if c != nil {
		switch c.Runtime {
		case "docker", "podman":
			return c.Runtime
		case "containerd", "cri-o", "kubernetes":
			return "kubernetes"
		}
	}
	if r != nil {
		switch {
		case strings.HasPrefix(r.Chain, "KUBE-") || strings.Contains(r.Table, "kube-proxy") || strings.HasPrefix(r.Chain, "endpoint-"):
			return "kubernetes"
		case strings.HasPrefix(r.Chain, "DOCKER") || strings.Contains(r.Table, "docker"):
			return "docker"
		}
	}
	// The bridges each one makes.
	switch {
	case bridge == "docker0" || strings.HasPrefix(bridge, "br-"):
		return "docker"
	case strings.HasPrefix(bridge, "podman") || strings.HasPrefix(bridge, "cni-podman"):
		return "podman"
	case bridge == "cni0" || bridge == "cbr0":
		return "kubernetes"
	}
	return ""
}

// bridgeOf names the bridge the host's end of a namespace's veth is on.
func (ev *HostEvidence) bridgeOf(ns *sockets.Namespace) string {
	for _, p := range ev.Peers {
		if ns != nil && p.Namespace.Inode == ns.Inode {
			return p.Bridge
		}
	}
	return ""
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
