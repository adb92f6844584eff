package firewall

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Host is what the walk knows of the host whose rules it walks, beyond
// the rules: the kernel consults both. The zero Host knows nothing, and
// conditions that depend on it stay open (and the path says so).
type Host struct {
	// LocalAddrs are the host's local addresses as the kernel's local
	// routing table holds them: each address of each interface
	// (198.18.0.2/32) and loopback's 127.0.0.0/8. nil: unknown. Loopback
	// addresses are local either way.
	LocalAddrs []netip.Prefix
	// Route names the interface the kernel sends a packet for dst by, ""
	// when it cannot tell. nil: unknown. Local addresses go by lo.
	Route func(dst netip.Addr) string
}

// isLocal says whether a is one of the host's addresses: 1 yes, 0 no, -1
// unknown.
func (h *Host) isLocal(a netip.Addr) int {
	a = a.Unmap()
	if a.IsLoopback() {
		return 1
	}
	if h == nil || h.LocalAddrs == nil {
		return -1
	}
	for _, p := range h.LocalAddrs {
		if p.Contains(a) {
			return 1
		}
	}
	return 0
}

// route gives the interface the packet for a leaves by.
func (h *Host) route(a netip.Addr) dev {
	if h.isLocal(a) == 1 {
		return dev{name: "lo", known: true}
	}
	if h == nil || h.Route == nil {
		return dev{}
	}
	name := h.Route(a.Unmap())
	return dev{name: name, known: name != ""}
}

// Conn is the connection whose first packet Walk follows: a TCP SYN from
// Src to Dst, unless Proto names another protocol.
type Conn struct {
	Src   netip.Addr // the client's address; the zero Addr when unknown
	Dst   netip.AddrPort
	Proto string // "tcp" when empty
	// Local says the client runs on this host: its packet starts at the
	// OUTPUT hook. Otherwise it comes from elsewhere, at PREROUTING.
	Local bool
	// In is the interface the packet arrives on, for a client elsewhere;
	// "" when unknown.
	In string
}

// Path is where the kernel's rules send a connection's first packet:
// every outcome, each with the rules that led to it.
type Path struct {
	// Hook is where the walk entered: "output" for a client on this host,
	// "prerouting" for one elsewhere.
	Hook string
	// Outcomes are the ways the packet may go, likeliest first. When the
	// path is Certain their probabilities add up to 1.
	Outcomes []Outcome
	// MayMatch are the rules with conditions the walk could not decide
	// (Hit.Unchecked) that change where the packet goes: Outcomes has it
	// both ways, each with its Assumed. Empty when every condition that
	// mattered was decided.
	MayMatch []Hit
	// Problems are what stopped the walk on some path: cycles of jumps,
	// missing chains, targets it does not know, its bounds. Each is a
	// *WalkError; outcomes it cut short have Verdict "unknown".
	Problems []error
}

// Certain reports whether the path depends on nothing the walk could not
// decide.
func (p *Path) Certain() bool { return len(p.MayMatch) == 0 && len(p.Problems) == 0 }

// Outcome is one way the packet may go.
type Outcome struct {
	// Verdict is "accept" (the packet goes on: to a socket of this host
	// when Local, otherwise out by routing), "drop", "reject", or
	// "unknown" when the walk could not follow it (see Path.Problems).
	Verdict string
	// Dst is where the packet goes: translated by Translation, or as
	// sent. A REDIRECT at PREROUTING sends it to the incoming interface's
	// first address, which the walk does not know: Dst's address is then
	// the unspecified one (0.0.0.0 or ::), and Local is set.
	Dst netip.AddrPort
	// LastAddr and LastPort end the range a translation picks from per
	// connection (Dst holds its first address, and its first port unless
	// the packet's own port is in the range and kept); zero otherwise.
	LastAddr netip.Addr
	LastPort uint16
	// Local says Dst is this host's: the packet is delivered here
	// (INPUT), not forwarded.
	Local bool
	// Translation is the DNAT or REDIRECT rule that translated the
	// packet; nil when none did.
	Translation *Rule
	// Decider is the rule, or the chain's policy, that dropped or
	// rejected the packet; nil otherwise.
	Decider *Rule
	// Comment is the comment of the Decider, else of the Translation, or
	// when that rule has none, of the verdict-map element that led to it
	// (kube-proxy's nftables mode names the Service on its map elements:
	// "default/web:http").
	Comment string
	// Probability is the chance of this outcome, from random splits
	// (iptables' statistic match, nft numgen), when Assumed holds.
	Probability float64
	// Assumed are the undecided conditions this outcome depends on, and
	// whether it takes them as holding.
	Assumed []Assumption
	// Steps are the rules that acted on the packet, in order: jumps,
	// returns, map lookups, marks, translations, verdicts.
	Steps []Step
	// assumed identifies Assumed, to tell outcomes apart cheaply.
	assumed uint64
}

// Assumption is a condition the walk could not decide, taken one way.
type Assumption struct {
	Rule      *Rule    // nil for a fact of the host (whether an address is local)
	Unchecked []string // the conditions, as written
	Held      bool
}

func (a Assumption) String() string {
	s := strings.Join(a.Unchecked, ", ")
	if a.Rule != nil {
		s = fmt.Sprintf("%s (%s)", s, a.Rule.Text)
	}
	if a.Held {
		return "if " + s
	}
	return "unless " + s
}

// Step is what one rule did to the packet.
type Step struct {
	Hook string // the hook being walked: "prerouting", "output", ...
	Rule Rule
	// Action is what the rule did: "jump", "goto", "return", "vmap",
	// "mark", "dnat", "redirect", "snat", "masquerade", "accept",
	// "drop", "reject", "policy", "unknown".
	Action string
	// Detail says to what: the chain jumped to, the map element found and
	// its verdict ("198.19.2.10 . tcp . 80 : goto service-..."), where a
	// translation sent the packet, the mark.
	Detail  string
	Comment string // the map element's comment, for a "vmap" step
	// Chance is the chance a random match took this step (1 when none).
	Chance float64
	// Unchecked are conditions of the rule the walk could not decide and
	// took as holding (see the outcome's Assumed).
	Unchecked []string
}

func (s Step) String() string {
	out := s.Hook + " " + s.Rule.Table + "/" + s.Rule.Chain + ": " + s.Action
	if s.Detail != "" {
		out += " " + s.Detail
	}
	if s.Chance != 1 {
		out += fmt.Sprintf(" (chance %.4g)", s.Chance)
	}
	if len(s.Unchecked) > 0 {
		out += " (if " + strings.Join(s.Unchecked, ", ") + ")"
	}
	return out
}

// The kinds of WalkError.
var (
	ErrCycle         = errors.New("jumps loop back into a chain the packet is in")
	ErrMissingChain  = errors.New("jump to a chain the table does not have")
	ErrUnknownTarget = errors.New("target the walk does not know")
	ErrWalkLimit     = errors.New("walk bound reached")
)

// WalkError is a problem that stopped the walk on one path.
type WalkError struct {
	Err    error // ErrCycle, ErrMissingChain, ErrUnknownTarget or ErrWalkLimit
	Rule   *Rule // the rule it happened at; nil for a bound
	Detail string
}

func (e *WalkError) Error() string {
	s := "firewall: " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Rule != nil {
		s += fmt.Sprintf(" (%s %s/%s: %s)", e.Rule.Source, e.Rule.Table, e.Rule.Chain, e.Rule.Text)
	}
	return s
}

func (e *WalkError) Unwrap() error { return e.Err }

// The walk's bounds: the kernel's own are lower (nftables allows 16 nested
// jumps and refuses loops), but rules read from elsewhere may not be.
const (
	maxDepth  = 64        // nested jumps
	maxForks  = 64        // undecided conditions and random splits on one path
	maxPaths  = 1024      // paths followed in one walk
	maxVisits = 1_000_000 // rules evaluated in one walk
	maxCands  = 32        // map elements an unknown key may be
)

// Walk follows c's first packet through rs as the kernel would: the base
// chains of every table at each hook it passes, in priority order — at
// OUTPUT for a client on this host, at PREROUTING for one elsewhere —
// through jumps, gotos, returns, verdict maps and random splits, through
// DNAT and REDIRECT (destination nat is decided once: the first nat chain
// that translates wins, as in the kernel), then on, translated, through
// the filter chains of INPUT, or FORWARD and POSTROUTING (SNAT and
// MASQUERADE are steps there), where a REJECT such as kube-proxy's for a
// Service without endpoints decides it.
//
// Conditions it cannot decide (an unknown source address, an interface,
// a match it does not know) are taken both ways when they change the
// outcome: both are in the Path, each with its assumptions, and the rule
// is in MayMatch. Bad rules (cycles, missing chains) end their path with
// Verdict "unknown" and a Problem; Walk never loops and is bounded. A
// Conn without a valid Dst has no outcomes.
func Walk(rs *Ruleset, c Conn, h Host) *Path {
	w := &walker{rs: rs, host: &h, may: map[string]int{}, problems: map[string]bool{}, assumptions: map[string]uint64{}}
	p := &Path{Hook: "prerouting"}
	if c.Local {
		p.Hook = "output"
	}
	proto := strings.ToLower(c.Proto)
	if proto == "" {
		proto = "tcp"
	}
	s := &state{
		hook: p.Hook, prob: 1,
		f: flow{host: w.host, local: c.Local, src: c.Src.Unmap(), proto: proto, markKnown: true,
			dst: netip.AddrPortFrom(c.Dst.Addr().Unmap(), c.Dst.Port())},
	}
	s.f.arrival = dev{name: c.In, known: c.In != ""}
	if c.Local && !s.f.src.IsValid() {
		// The kernel picks one of the host's addresses: lo's for a
		// loopback destination.
		switch {
		case s.f.dst.Addr().Is4() && s.f.dst.Addr().IsLoopback():
			s.f.src = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		case s.f.dst.Addr().IsLoopback():
			s.f.src = netip.IPv6Loopback()
		case h.LocalAddrs != nil:
			s.f.srcIn = [][]netip.Prefix{h.LocalAddrs}
		}
	}
	if c.Dst.Addr().IsValid() {
		w.chains = w.baseChains(s.f.dst.Addr().Is4())
		w.enterHook(s)
		p.Outcomes = w.run(s)
	}
	sort.SliceStable(p.Outcomes, func(i, j int) bool { return p.Outcomes[i].Probability > p.Outcomes[j].Probability })
	p.MayMatch, p.Problems = w.mayList, w.problemList
	return p
}

type walker struct {
	rs     *Ruleset
	host   *Host
	chains map[string][]base
	paths  int
	visits int
	// may and problems deduplicate MayMatch and Problems; assumptions
	// numbers each undecided condition, for outcome keys.
	may         map[string]int
	assumptions map[string]uint64
	mayList     []Hit
	problems    map[string]bool
	problemList []error
}

// base is a base chain and its table.
type base struct {
	t *Table
	c *Chain
}

// baseChains gives each hook's base chains for a packet of the family,
// lowest priority first (in the order read when equal).
func (w *walker) baseChains(v4 bool) map[string][]base {
	out := map[string][]base{}
	if w.rs == nil {
		return out
	}
	for ti := range w.rs.Tables {
		t := &w.rs.Tables[ti]
		switch t.Family {
		case "inet":
		case "ip":
			if !v4 {
				continue
			}
		case "ip6":
			if v4 {
				continue
			}
		default:
			continue // arp, bridge, netdev: not the IP hooks
		}
		for ci := range t.Chains {
			if c := &t.Chains[ci]; c.Hook != "" {
				out[c.Hook] = append(out[c.Hook], base{t, c})
			}
		}
	}
	for _, l := range out {
		sort.SliceStable(l, func(i, j int) bool { return l[i].c.Priority < l[j].c.Priority })
	}
	return out
}

// state is one path's position: the packet, the hook and chain it is in,
// and what happened so far.
type state struct {
	f      flow
	hook   string
	looped bool // a packet of this host to itself, back in at PREROUTING
	next   int  // the next base chain of hook
	base   base // the base chain being walked, when stack is not empty
	stack  []frame
	prob   float64
	forks  int
	steps  *stepNode
	// translation is the rule that translated the destination, the range
	// it picks from, and the map element comment that led to it.
	translation *Rule
	lastAddr    netip.Addr
	lastPort    uint16
	transNote   string
}

// frame is a chain being walked: jumps push one, goto replaces it.
type frame struct {
	t    *Table
	c    *Chain
	rule int
	// via are the chains a goto left for this one: still part of the loop
	// a goto back to them would make.
	via []*Chain
	// comment is the comment of the map element that led here.
	comment string
}

type stepNode struct {
	s    Step
	prev *stepNode
}

func (s *state) step(st Step) {
	st.Hook = s.hook
	if st.Chance == 0 {
		st.Chance = 1
	}
	s.steps = &stepNode{st, s.steps}
}

func (s *state) clone() *state {
	c := *s
	c.stack = slices.Clone(s.stack)
	return &c
}

// outcome ends s's path. note is the comment of the map element that led
// to the decider.
func (w *walker) outcome(s *state, verdict string, decider *Rule, note string) []Outcome {
	o := Outcome{Verdict: verdict, Dst: s.f.dst, LastAddr: s.lastAddr, LastPort: s.lastPort,
		Translation: s.translation, Decider: decider, Probability: s.prob, Local: s.f.isLocalDst() == 1}
	switch {
	case decider != nil && decider.Comment != "":
		o.Comment = decider.Comment
	case decider != nil:
		o.Comment = note
	case s.translation != nil && s.translation.Comment != "":
		o.Comment = s.translation.Comment
	case s.translation != nil:
		o.Comment = s.transNote
	}
	n := 0
	for p := s.steps; p != nil; p = p.prev {
		n++
	}
	o.Steps = make([]Step, n)
	for p := s.steps; p != nil; p = p.prev {
		n--
		o.Steps[n] = p.s
	}
	return []Outcome{o}
}

func (w *walker) problem(s *state, err error, r *Rule, detail string) []Outcome {
	e := &WalkError{Err: err, Rule: r, Detail: detail}
	if msg := e.Error(); !w.problems[msg] {
		w.problems[msg] = true
		w.problemList = append(w.problemList, e)
	}
	return w.outcome(s, "unknown", nil, "")
}

// run walks s to the end of its path and returns its outcomes, forking
// where a rule may match or matches at random.
func (w *walker) run(s *state) []Outcome {
	w.paths++
	if w.paths > maxPaths {
		return w.problem(s, ErrWalkLimit, nil, fmt.Sprintf("more than %d paths", maxPaths))
	}
	for {
		if len(s.stack) == 0 {
			if done, outs := w.nextChain(s); done {
				return outs
			}
			continue
		}
		fr := &s.stack[len(s.stack)-1]
		if fr.rule >= len(fr.c.Rules) {
			if len(s.stack) == 1 {
				if outs, done := w.policy(s); done {
					return outs
				}
				continue
			}
			s.stack = s.stack[:len(s.stack)-1] // the end of a chain returns
			continue
		}
		r := &fr.c.Rules[fr.rule]
		fr.rule++
		if w.visits++; w.visits > maxVisits {
			return w.problem(s, ErrWalkLimit, nil, fmt.Sprintf("more than %d rules evaluated", maxVisits))
		}
		if !acts(r) {
			continue
		}
		chance, unchecked := w.decide(r, &s.f, fr.t)
		switch {
		case chance == 0 && unchecked == nil:
			continue
		case unchecked != nil:
			texts := undecidedTexts(unchecked)
			return w.fork(s, r, unchecked, func(held *state) []Outcome { return w.matched(held, r, chance, texts) }, w.run)
		case chance < 1:
			return w.matched(s, r, chance, nil)
		}
		if outs, done := w.take(s, r, 1, nil); done {
			return outs
		}
	}
}

// acts reports whether r may change the packet or its path: rules that
// only count or log need no deciding.
func acts(r *Rule) bool {
	switch r.Verdict {
	case "", "log", "nflog", "ulog", "audit", "trace", "tcpmss", "checksum", "dscp", "tos", "ttl", "hl",
		"classify", "tee", "idletimer", "led", "secmark", "connsecmark", "set", "counter":
		return false
	case "connmark":
		return r.mark != nil
	}
	return true
}

// matched continues s through r, which matches with the given chance.
func (w *walker) matched(s *state, r *Rule, chance float64, unchecked []string) []Outcome {
	if chance >= 1 {
		if outs, done := w.take(s, r, 1, unchecked); done {
			return outs
		}
		return w.run(s)
	}
	if s.forks++; s.forks > maxForks {
		return w.problem(s, ErrWalkLimit, r, fmt.Sprintf("more than %d random splits and undecided conditions on one path", maxForks))
	}
	taken := s.clone()
	taken.prob *= chance
	var outs []Outcome
	if o, done := w.take(taken, r, chance, unchecked); done {
		outs = o
	} else {
		outs = w.run(taken)
	}
	s.prob *= 1 - chance
	return mergeSame(append(outs, w.run(s)...))
}

// fork follows s both ways past undecided conditions: held as if they
// all held, not as if one failed (then, for a single condition, the walk
// learns it failed). r is the rule they belong to, nil for a fact of the
// host. When both ways end alike, they did not matter.
func (w *walker) fork(s *state, r *Rule, conds []undecided, held, not func(*state) []Outcome) []Outcome {
	if s.forks++; s.forks > maxForks {
		return w.problem(s, ErrWalkLimit, r, fmt.Sprintf("more than %d random splits and undecided conditions on one path", maxForks))
	}
	h := s.clone()
	for _, c := range conds {
		if c.learn != nil {
			c.learn(&h.f, true)
		}
	}
	if len(conds) == 1 && conds[0].learn != nil {
		conds[0].learn(&s.f, false)
	}
	unchecked := undecidedTexts(conds)
	yes := held(h)
	no := not(s)
	if sameOutcomes(yes, no) {
		return yes
	}
	key := strings.Join(unchecked, "\x00")
	if r != nil {
		key = r.Source + "\x00" + r.Table + "\x00" + r.Chain + "\x00" + r.Text + "\x00" + key
		if _, ok := w.may[key]; !ok {
			w.may[key] = len(w.mayList)
			w.mayList = append(w.mayList, Hit{Rule: *r, Unchecked: unchecked})
		}
	}
	id, ok := w.assumptions[key]
	if !ok {
		id = uint64(len(w.assumptions)+1) * 2
		w.assumptions[key] = id
	}
	for i := range yes {
		yes[i].Assumed = append([]Assumption{{Rule: r, Unchecked: unchecked, Held: true}}, yes[i].Assumed...)
		yes[i].assumed = mix(yes[i].assumed, id+1)
	}
	for i := range no {
		no[i].Assumed = append([]Assumption{{Rule: r, Unchecked: unchecked}}, no[i].Assumed...)
		no[i].assumed = mix(no[i].assumed, id)
	}
	return append(yes, no...)
}

// mix folds one assumption into an outcome's list of them.
func mix(h, id uint64) uint64 {
	h ^= id
	h *= 0x100000001b3 // FNV-1a's prime
	return h ^ h>>29
}

// nextChain moves s into the next base chain of its hook, or on to the
// next hook; done when the path ends.
func (w *walker) nextChain(s *state) (bool, []Outcome) {
	chains := w.chains[s.hook]
	for s.next < len(chains) {
		b := chains[s.next]
		s.next++
		if b.c.Type == "nat" && w.natDone(s) {
			continue
		}
		s.base = b
		s.stack = append(s.stack[:0], frame{t: b.t, c: b.c})
		return false, nil
	}
	// The hook is passed: a nat kind no chain decided is decided now
	// (conntrack's null binding), and routing picks the next hook.
	switch s.hook {
	case "prerouting", "output":
		s.f.dstDone = true
	case "postrouting", "input":
		s.f.srcDone = true
	}
	local := s.f.isLocalDst()
	routing := s.hook == "prerouting" || s.hook == "postrouting" && s.f.local && !s.looped
	if routing && local < 0 {
		fact := s.f.dst.Addr().String() + " is an address of this host"
		assume := func(local int8) func(*state) []Outcome {
			return func(s *state) []Outcome {
				s.f.dstLocal = local
				if outs := w.advance(s); outs != nil {
					return outs
				}
				return w.run(s)
			}
		}
		return true, w.fork(s, nil, []undecided{{text: fact}}, assume(1), assume(-1))
	}
	if outs := w.advance(s); outs != nil {
		return true, outs
	}
	return false, nil
}

// advance moves s to the hook routing sends it to after its own; the
// outcome when the packet leaves the hooks there (delivered, or sent).
func (w *walker) advance(s *state) []Outcome {
	local := s.f.isLocalDst()
	switch s.hook {
	case "output":
		s.hook = "postrouting"
	case "postrouting":
		if !s.f.local || s.looped || local != 1 {
			return w.outcome(s, "accept", nil, "")
		}
		s.hook, s.looped = "prerouting", true // back in by lo
	case "prerouting":
		s.hook = "forward"
		if local == 1 {
			s.hook = "input"
		}
	case "forward":
		s.hook = "postrouting"
	default: // input
		return w.outcome(s, "accept", nil, "")
	}
	s.next = 0
	w.enterHook(s)
	return nil
}

// natDone reports whether the nat chains of s's hook are past deciding:
// each connection's destination is translated once (PREROUTING or
// OUTPUT), and its source once (POSTROUTING or INPUT).
func (w *walker) natDone(s *state) bool {
	if s.f.untracked {
		return true // nat works on conntrack's entries
	}
	switch s.hook {
	case "prerouting", "output":
		return s.f.dstDone
	case "postrouting", "input":
		return s.f.srcDone
	}
	return true
}

// enterHook sets the interfaces the packet has at s's hook.
func (w *walker) enterHook(s *state) {
	none := dev{known: true}
	in := s.f.arrival
	if s.f.local {
		in = none
		if s.looped {
			in = dev{name: "lo", known: true}
		}
	}
	if s.f.routeFor != s.f.dst.Addr() || !s.f.routeFor.IsValid() {
		s.f.route, s.f.routeFor = w.host.route(s.f.dst.Addr()), s.f.dst.Addr()
		if s.f.dstLocal == 1 {
			s.f.route = dev{name: "lo", known: true}
		}
	}
	out := s.f.route
	switch s.hook {
	case "prerouting", "input":
		s.f.in, s.f.out = in, none
	case "output":
		s.f.in, s.f.out = none, out
	default: // forward, postrouting
		s.f.in, s.f.out = in, out
	}
}

// policy ends s's base chain with its policy.
func (w *walker) policy(s *state) ([]Outcome, bool) {
	s.stack = s.stack[:0]
	if s.base.c.Policy == "drop" {
		p, _ := s.base.t.policy(s.base.c)
		s.step(Step{Rule: p, Action: "policy", Detail: "drop"})
		return w.outcome(s, "drop", &p, ""), true
	}
	return nil, false
}

// decide compares r's conditions with f: the chance it matches (0 when
// a condition fails), and the conditions the walk could not decide (nil
// when none).
func (w *walker) decide(r *Rule, f *flow, t *Table) (float64, []undecided) {
	dst := f.dst.Addr()
	if (r.family == "ip" && !dst.Is4()) || (r.family == "ip6" && dst.Is4()) {
		return 0, nil
	}
	if r.proto != "" && r.proto != f.proto && (protoNum(r.proto) < 0 || protoNum(r.proto) != protoNum(f.proto)) {
		return 0, nil
	}
	if len(r.ports) > 0 && !inRanges(r.ports, f.dst.Port()) || inRanges(r.notPorts, f.dst.Port()) {
		return 0, nil
	}
	var unchecked []undecided
	if len(r.dst) > 0 {
		if dst.IsUnspecified() {
			unchecked = append(unchecked, undecided{text: prefixText(r, "d", r.dst)})
		} else if !inPrefixes(r.dst, dst) {
			return 0, nil
		}
	}
	if len(r.src) > 0 {
		in, known := f.srcIs(r.src)
		switch {
		case !known:
			ps := r.src
			unchecked = append(unchecked, undecided{prefixText(r, "s", ps), func(f *flow, held bool) { f.learnSrc(ps, held) }})
		case !in:
			return 0, nil
		}
	}
	for _, c := range r.ifaces {
		d := &f.out
		if c.in {
			d = &f.in
		}
		is, known := d.match(c.name)
		switch {
		case !known:
			c := c
			unchecked = append(unchecked, undecided{c.text, func(f *flow, held bool) { f.learnIface(c.in, c.name, held != c.negate) }})
		case is == c.negate:
			return 0, nil
		}
	}
	chance := 1.0
	for _, c := range r.other {
		if c.m == nil {
			unchecked = append(unchecked, undecided{text: c.text})
			continue
		}
		p, known := c.m.match(f, t)
		switch {
		case !known:
			u := undecided{text: c.text}
			if l, ok := c.m.(learner); ok {
				u.learn = l.learn
			}
			unchecked = append(unchecked, u)
		case p == 0:
			return 0, nil
		default:
			chance *= p
		}
	}
	return chance, unchecked
}

// prefixText writes an address condition for a path's assumptions.
func prefixText(r *Rule, dir string, ps []netip.Prefix) string {
	list := make([]string, len(ps))
	for i, p := range ps {
		list[i] = p.String()
	}
	if r.Source == Nftables {
		return map[string]string{"d": "daddr ", "s": "saddr "}[dir] + strings.Join(list, ", ")
	}
	return "-" + dir + " " + strings.Join(list, ",")
}

// take applies r, which matched, to s: done when s's path ended there,
// with its outcomes.
func (w *walker) take(s *state, r *Rule, chance float64, unchecked []string) ([]Outcome, bool) {
	fr := &s.stack[len(s.stack)-1]
	st := Step{Rule: *r, Action: r.Verdict, Chance: chance, Unchecked: unchecked}
	switch r.Verdict {
	case "accept":
		s.step(st)
		s.stack = s.stack[:0] // on to the next base chain
	case "drop", "reject":
		s.step(st)
		return w.outcome(s, r.Verdict, r, fr.comment), true
	case "return":
		s.step(st)
		s.stack = s.stack[:len(s.stack)-1]
		if len(s.stack) == 0 {
			s.stack = append(s.stack, frame{t: s.base.t, c: s.base.c, rule: len(s.base.c.Rules)})
		}
	case "jump", "goto":
		st.Detail = r.JumpTo
		s.step(st)
		return w.enter(s, r, r.Verdict, r.JumpTo, fr.comment)
	case "vmap":
		return w.vmap(s, r, chance, unchecked)
	case "mark", "connmark":
		op := markOp{unknown: true}
		if r.mark != nil {
			op = *r.mark
		}
		op.apply(&s.f)
		if s.f.markKnown {
			st.Detail = "0x" + strconv.FormatUint(uint64(s.f.mark), 16)
		} else {
			st.Detail = "(unknown)"
		}
		s.step(st)
	case "dnat", "redirect":
		return w.translate(s, r, st)
	case "notrack":
		s.step(st)
		s.f.untracked = true
	case "snat", "masquerade":
		st.Detail = r.To
		s.step(st)
		s.f.snat, s.f.srcDone = true, true
		if r.Verdict == "snat" && r.nat != nil && r.nat.addrLo.IsValid() {
			s.f.src = r.nat.addrLo
		}
		s.stack = s.stack[:0]
	default:
		name := r.target
		if name == "" {
			name = r.Verdict
		}
		detail := fmt.Sprintf("%s is neither a chain of table %s nor a target the walk knows", name, r.Table)
		if r.Verdict == "queue" || r.Verdict == "nfqueue" {
			detail = "the packet is queued to a program that decides"
		}
		st.Action = "unknown"
		s.step(st)
		return w.problem(s, ErrUnknownTarget, r, detail), true
	}
	return nil, false
}

// enter continues s in chain name by a jump or goto.
func (w *walker) enter(s *state, r *Rule, how, name, comment string) ([]Outcome, bool) {
	fr := &s.stack[len(s.stack)-1]
	c := fr.t.Chain(name)
	if c == nil {
		return w.problem(s, ErrMissingChain, r, fmt.Sprintf("no chain %s in table %s", name, fr.t.Label())), true
	}
	for _, f := range s.stack {
		if f.c == c || slices.Contains(f.via, c) {
			return w.problem(s, ErrCycle, r, "back into "+name), true
		}
	}
	if how == "goto" {
		via := append(slices.Clone(fr.via), fr.c)
		*fr = frame{t: fr.t, c: c, via: via, comment: comment}
		return nil, false
	}
	if len(s.stack) >= maxDepth {
		return w.problem(s, ErrWalkLimit, r, fmt.Sprintf("more than %d nested jumps", maxDepth)), true
	}
	s.stack = append(s.stack, frame{t: fr.t, c: c, comment: comment})
	return nil, false
}

// vmap looks the packet up in r's verdict map and applies the verdict
// found; a random key (numgen) splits the path between the elements.
func (w *walker) vmap(s *state, r *Rule, chance float64, unchecked []string) ([]Outcome, bool) {
	fr := &s.stack[len(s.stack)-1]
	vm := r.vmap
	if vm == nil {
		return w.problem(s, ErrUnknownTarget, r, "a verdict map the walk cannot read"), true
	}
	elems, name := vm.elems, "map"
	if vm.set != "" {
		name = "@" + vm.set
		set := fr.t.Set(vm.set)
		if set == nil {
			return w.problem(s, ErrMissingChain, r, fmt.Sprintf("no map %s in table %s", vm.set, fr.t.Label())), true
		}
		elems = set.Elements
	}
	apply := func(s *state, e *Element, chance float64) []Outcome {
		st := Step{Rule: *r, Action: "vmap", Detail: name + ": " + e.Key + " : " + e.Value, Comment: e.Comment,
			Chance: chance, Unchecked: unchecked}
		s.step(st)
		outs, done := w.verdict(s, r, e)
		if done {
			return outs
		}
		return w.run(s)
	}
	if len(vm.key) == 1 && vm.key[0].kind == "numgen" {
		k := vm.key[0]
		count, miss, ok := numgenShares(k, elems)
		if !ok {
			return w.problem(s, ErrUnknownTarget, r, "a random split over elements the walk cannot read"), true
		}
		if s.forks++; s.forks > maxForks {
			return w.problem(s, ErrWalkLimit, r, fmt.Sprintf("more than %d random splits and undecided conditions on one path", maxForks)), true
		}
		var outs []Outcome
		for i, n := range count {
			if n == 0 {
				continue
			}
			b := s.clone()
			p := float64(n) / float64(k.mod)
			b.prob *= p
			outs = append(outs, apply(b, &elems[i], chance*p)...)
		}
		if miss > 0 {
			s.prob *= float64(miss) / float64(k.mod)
			outs = append(outs, w.run(s)...)
		}
		return mergeSame(outs), true
	}
	vals := make([]value, len(vm.key))
	known := make([]bool, len(vm.key))
	texts := make([]string, len(vm.key))
	for i, k := range vm.key {
		v, present, ok := k.eval(&s.f)
		if !present {
			return nil, false // no such field: the map matches nothing
		}
		vals[i], known[i], texts[i] = v, ok, k.kind
	}
	idx, sure := lookup(elems, vals, known)
	if sure {
		if len(idx) == 0 {
			return nil, false
		}
		return apply(s, &elems[idx[0]], chance), true
	}
	if len(idx) > maxCands {
		return w.problem(s, ErrWalkLimit, r, fmt.Sprintf("the packet may be any of %d elements of %s", len(idx), name)), true
	}
	// Each element it may be, in turn, and at last none of them.
	keyText := strings.Join(texts, " . ")
	var try func(s *state, i int) []Outcome
	try = func(s *state, i int) []Outcome {
		if i == len(idx) {
			return w.run(s)
		}
		e := &elems[idx[i]]
		cond := undecided{text: fmt.Sprintf("%s is %s in %s", keyText, e.Key, name)}
		if k := vm.key; len(k) == 1 && (k[0].kind == "iifname" || k[0].kind == "oifname") && len(e.key) == 1 {
			// An interface the walk may have narrowed, and learns.
			in, pattern := k[0].kind == "iifname", e.key[0].lo.str
			d := &s.f.out
			if in {
				d = &s.f.in
			}
			switch is, known := d.match(pattern); {
			case known && is:
				return apply(s, e, chance)
			case known:
				return try(s, i+1)
			}
			cond.learn = func(f *flow, held bool) { f.learnIface(in, pattern, held) }
		}
		return w.fork(s, r, []undecided{cond}, func(h *state) []Outcome { return apply(h, e, chance) },
			func(n *state) []Outcome { return try(n, i+1) })
	}
	return try(s, 0), true
}

// verdict applies a map element's verdict.
func (w *walker) verdict(s *state, r *Rule, e *Element) ([]Outcome, bool) {
	v := e.verdict
	if v == nil {
		return w.problem(s, ErrUnknownTarget, r, "map element "+e.Key+" has no verdict the walk can read"), true
	}
	fr := &s.stack[len(s.stack)-1]
	note := e.Comment
	if note == "" {
		note = fr.comment
	}
	switch v.kind {
	case "accept":
		s.stack = s.stack[:0]
	case "drop":
		return w.outcome(s, "drop", r, note), true
	case "return":
		s.stack = s.stack[:len(s.stack)-1]
		if len(s.stack) == 0 {
			s.stack = append(s.stack, frame{t: s.base.t, c: s.base.c, rule: len(s.base.c.Rules)})
		}
	case "continue":
	case "jump", "goto":
		return w.enter(s, r, v.kind, v.chain, note)
	default:
		return w.problem(s, ErrUnknownTarget, r, "map verdict "+v.String()), true
	}
	return nil, false
}

// translate applies a DNAT or REDIRECT.
func (w *walker) translate(s *state, r *Rule, st Step) ([]Outcome, bool) {
	n := r.nat
	if n == nil {
		st.Action = "unknown"
		s.step(st)
		return w.problem(s, ErrUnknownTarget, r, "a translation the walk cannot read: "+r.To), true
	}
	addr, port := s.f.dst.Addr(), s.f.dst.Port()
	s.lastAddr, s.lastPort = netip.Addr{}, 0
	redirectedHere := false
	if r.Verdict == "redirect" {
		// To this host: loopback for its own packets, the incoming
		// interface's first address for others.
		switch {
		case s.hook == "output" && addr.Is4():
			addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		case s.hook == "output":
			addr = netip.IPv6Loopback()
		case addr.Is4():
			addr, redirectedHere = netip.IPv4Unspecified(), true
		default:
			addr, redirectedHere = netip.IPv6Unspecified(), true
		}
	} else if n.addrLo.IsValid() {
		if n.addrLo.Is4() != addr.Is4() {
			return w.problem(s, ErrUnknownTarget, r, "a translation to another address family"), true
		}
		addr = n.addrLo
		if n.addrHi != n.addrLo {
			s.lastAddr = n.addrHi
		}
	}
	if n.portLo != 0 && (port < n.portLo || port > n.portHi) {
		// The kernel keeps the packet's port when the range holds it.
		port = n.portLo
		if n.portHi != n.portLo {
			s.lastPort = n.portHi
		}
	}
	s.f.dst = netip.AddrPortFrom(addr, port)
	s.f.dnat, s.f.dstDone = true, true
	s.translation, s.transNote = r, s.stack[len(s.stack)-1].comment
	if redirectedHere {
		s.f.dstLocal = 1
	} else if s.f.dstLocal != 0 {
		s.f.dstLocal = 0 // a new address: the host says
	}
	if s.hook == "output" {
		// The kernel routes the packet again at once: the chains after
		// nat at OUTPUT see the new interface.
		s.f.routeFor = netip.Addr{}
		w.enterHook(s)
	}
	st.Detail = s.f.dst.String()
	if s.lastAddr.IsValid() || s.lastPort != 0 {
		last := s.lastAddr
		if !last.IsValid() {
			last = addr
		}
		lp := s.lastPort
		if lp == 0 {
			lp = port
		}
		st.Detail += " to " + netip.AddrPortFrom(last, lp).String()
	}
	s.step(st)
	s.stack = s.stack[:0] // the nat chain ends; later ones are past deciding
	return nil, false
}

// outcomeKey identifies an outcome, leaving out its steps and
// probability.
type outcomeKey struct {
	verdict, comment string
	dst              netip.AddrPort
	lastAddr         netip.Addr
	lastPort         uint16
	local            bool
	trans, decider   ruleKey
	assumed          uint64
	nAssumed         int
}

type ruleKey struct{ table, chain, text string }

func keyOf(r *Rule) ruleKey {
	if r == nil {
		return ruleKey{}
	}
	return ruleKey{r.Table, r.Chain, r.Text}
}

func keyOfOutcome(o *Outcome) outcomeKey {
	return outcomeKey{o.Verdict, o.Comment, o.Dst, o.LastAddr, o.LastPort, o.Local,
		keyOf(o.Translation), keyOf(o.Decider), o.assumed, len(o.Assumed)}
}

// mergeSame adds up the probabilities of outcomes alike but for their
// steps (two random branches that end in one place), keeping the first.
func mergeSame(outs []Outcome) []Outcome {
	if len(outs) < 2 {
		return outs
	}
	seen := make(map[outcomeKey]int, len(outs))
	out := outs[:0]
	for _, o := range outs {
		k := keyOfOutcome(&o)
		if i, ok := seen[k]; ok {
			out[i].Probability += o.Probability
			continue
		}
		seen[k] = len(out)
		out = append(out, o)
	}
	return out
}

// sameOutcomes reports whether a and b end alike with the same chances.
func sameOutcomes(a, b []Outcome) bool {
	if len(a) != len(b) && (len(a) == 0 || len(b) == 0) {
		return false
	}
	sum := func(l []Outcome) map[outcomeKey]float64 {
		m := make(map[outcomeKey]float64, len(l))
		for i := range l {
			m[keyOfOutcome(&l[i])] += l[i].Probability
		}
		return m
	}
	ma, mb := sum(a), sum(b)
	if len(ma) != len(mb) {
		return false
	}
	for k, p := range ma {
		q, ok := mb[k]
		if !ok || math.Abs(p-q) > 1e-9 {
			return false
		}
	}
	return true
}
