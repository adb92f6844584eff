package firewall

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// flow is a connection's first packet as the walk sees it at one point
// of its path: where it is going, what the kernel knows of it there, and
// what earlier rules did to it.
type flow struct {
	host  *Host
	local bool       // sent by this host (its source is one of the host's addresses)
	src   netip.Addr // the zero Addr when unknown
	// srcIn and srcNot narrow an unknown source: it is in one prefix of
	// each srcIn list, and in none of srcNot (what the walk assumed of it).
	srcIn  [][]netip.Prefix
	srcNot []netip.Prefix
	dst    netip.AddrPort
	proto  string
	// in and out are the interfaces the packet arrived on and leaves by,
	// as the hook being walked knows them. arrival is the interface a
	// packet from elsewhere came in by, and route the one routing sends
	// it out by (for the address routeFor): they outlive the hook.
	in, out  dev
	arrival  dev
	route    dev
	routeFor netip.Addr
	// mark is the packet's mark (0 when it enters the host; rules may set
	// it), markKnown false once a rule set it to what the walk cannot tell.
	mark      uint32
	markKnown bool
	// dnat and snat say the connection was translated (conntrack's DNAT
	// and SNAT status); dstDone and srcDone that its destination / source
	// nat is decided, so later nat chains of that kind are not consulted.
	dnat, snat, dstDone, srcDone bool
	// untracked: a NOTRACK rule took it out of conntrack (and of nat).
	untracked bool
	// dstLocal overrides the host's word on whether the destination is
	// one of its addresses: 1 after a REDIRECT at PREROUTING (to an
	// address the walk does not know) or when assumed, -1 when assumed
	// not.
	dstLocal int8
}

// isLocalDst says whether the destination is one of the host's
// addresses: 1 yes, 0 no, -1 unknown.
func (f *flow) isLocalDst() int {
	if f.dstLocal != 0 {
		return max(int(f.dstLocal), 0)
	}
	return f.host.isLocal(f.dst.Addr())
}

// dev is an interface as one hook knows it: known with name "" means the
// packet has none there (no input interface at OUTPUT, no output
// interface at PREROUTING). An unknown one may be narrowed by what the
// walk assumed: the patterns it is, and those it is not.
type dev struct {
	name    string
	known   bool
	is, not []string
}

// match says whether the interface is the pattern (a trailing '+' or '*'
// makes it a prefix), and false for known when the walk cannot tell.
func (d *dev) match(pattern string) (is, known bool) {
	if d.known {
		return ifaceName(pattern, d.name), true
	}
	for _, q := range d.is {
		switch {
		case q == pattern:
			return true, true
		case !wildcard(pattern) && !ifaceName(q, pattern):
			return false, true // it starts with q's prefix; pattern does not
		}
	}
	if slices.Contains(d.not, pattern) {
		return false, true
	}
	return false, false
}

// learn narrows d with an assumption: it is (or is not) the pattern.
func (d *dev) learn(pattern string, is bool) {
	switch {
	case d.known:
	case is && !wildcard(pattern):
		*d = dev{name: pattern, known: true}
	case is:
		d.is = append(slices.Clip(d.is), pattern)
	default:
		d.not = append(slices.Clip(d.not), pattern)
	}
}

func wildcard(pattern string) bool {
	n := len(pattern)
	return n > 0 && (pattern[n-1] == '+' || pattern[n-1] == '*')
}

// learnIface narrows the packet's input or output interface.
func (f *flow) learnIface(in bool, pattern string, is bool) {
	if !in {
		f.out.learn(pattern, is)
		if f.routeFor == f.dst.Addr() {
			f.route = f.out
		}
		return
	}
	f.in.learn(pattern, is)
	if !f.local {
		f.arrival = f.in
	}
}

// srcIs says whether the source address is in one of ps, and false for
// known when the walk cannot tell.
func (f *flow) srcIs(ps []netip.Prefix) (in, known bool) {
	if f.src.IsValid() {
		return inPrefixes(ps, f.src.Unmap()), true
	}
	if covered(ps, f.srcNot) {
		return false, true
	}
	for _, g := range f.srcIn {
		if covered(g, ps) {
			return true, true
		}
		if !overlaps(g, ps) {
			return false, true
		}
	}
	return false, false
}

// learnSrc narrows an unknown source address with an assumption.
func (f *flow) learnSrc(ps []netip.Prefix, in bool) {
	if f.src.IsValid() {
		return
	}
	if in {
		f.srcIn = append(slices.Clip(f.srcIn), ps)
	} else {
		f.srcNot = append(slices.Clip(f.srcNot), ps...)
	}
}

// covered reports whether every prefix of ps lies inside one of by.
func covered(ps, by []netip.Prefix) bool {
	if len(ps) == 0 || len(by) == 0 {
		return false
	}
	for _, p := range ps {
		inside := false
		for _, b := range by {
			if b.Bits() <= p.Bits() && b.Contains(p.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			return false
		}
	}
	return true
}

func overlaps(a, b []netip.Prefix) bool {
	for _, p := range a {
		for _, q := range b {
			if p.Overlaps(q) {
				return true
			}
		}
	}
	return false
}

// undecided is a condition the walk could not decide, and what holding
// or failing tells it of the packet (learn is nil when nothing).
type undecided struct {
	text  string
	learn func(f *flow, held bool)
}

func undecidedTexts(us []undecided) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.text
	}
	return out
}

// learner is a matcher that knows what an assumption about it tells.
type learner interface {
	learn(f *flow, held bool)
}

// matcher decides one condition for the walk: the chance it holds for f
// (1 or 0, or a fraction for a random match), and false when the walk
// cannot tell.
type matcher interface {
	match(f *flow, t *Table) (chance float64, known bool)
}

func yes(b bool) (float64, bool) {
	if b {
		return 1, true
	}
	return 0, true
}

func unknown() (float64, bool) { return 0, false }

// always holds: options that only qualify another (statistic's --mode).
type always struct{}

func (always) match(*flow, *Table) (float64, bool) { return 1, true }

// notPrefix holds when the address is outside every prefix ("! -d").
type notPrefix struct {
	src bool
	ps  []netip.Prefix
}

func (m notPrefix) match(f *flow, _ *Table) (float64, bool) {
	if m.src {
		in, known := f.srcIs(m.ps)
		if !known {
			return unknown()
		}
		return yes(!in)
	}
	if f.dst.Addr().IsUnspecified() {
		return unknown() // redirected to an address the walk does not know
	}
	return yes(!inPrefixes(m.ps, f.dst.Addr()))
}

func (m notPrefix) learn(f *flow, held bool) {
	if m.src {
		f.learnSrc(m.ps, !held)
	}
}

// notProto holds when the protocol is another ("! -p udp").
type notProto struct{ proto string }

func (m notProto) match(f *flow, _ *Table) (float64, bool) {
	n := protoNum(m.proto)
	return yes(!strings.EqualFold(m.proto, f.proto) && (n < 0 || n != protoNum(f.proto)))
}

// statistic holds at random with the given chance (-m statistic).
type statistic struct{ p float64 }

func (m statistic) match(*flow, *Table) (float64, bool) { return m.p, true }

// addrType is -m addrtype --src-type/--dst-type and nft's fib ... type:
// the kind of address the kernel's routing tables give it.
type addrType struct {
	src   bool
	types []string // upper case: LOCAL, UNICAST, MULTICAST, BROADCAST, ...
	neg   bool
}

func (m addrType) match(f *flow, _ *Table) (float64, bool) {
	typ, ok := f.addrType(m.src)
	if !ok {
		return unknown()
	}
	found := false
	for _, t := range m.types {
		switch t {
		case typ:
			found = true
		case "LOCAL", "UNICAST", "MULTICAST", "BROADCAST":
		default:
			// BLACKHOLE, UNREACHABLE, ...: a route's type, which the walk
			// does not know for a unicast address.
			if typ == "UNICAST" {
				return unknown()
			}
		}
	}
	return yes(found != m.neg)
}

// learn: an assumption that the destination is (or is not) of type LOCAL
// says whether it is one of the host's addresses.
func (m addrType) learn(f *flow, held bool) {
	if !m.src && len(m.types) == 1 && m.types[0] == "LOCAL" {
		f.learnLocalDst(held != m.neg)
	}
}

func (f *flow) learnLocalDst(local bool) {
	f.dstLocal = -1
	if local {
		f.dstLocal = 1
	}
}

// addrType names the type of the packet's source or destination address,
// as addrtype and fib see it; false when the walk cannot tell.
func (f *flow) addrType(src bool) (string, bool) {
	a := f.dst.Addr().Unmap()
	if src {
		if f.local && (!f.src.IsValid() || f.host.isLocal(f.src) != 0) {
			return "LOCAL", true // a packet this host sends has its own source
		}
		if a = f.src.Unmap(); !a.IsValid() {
			return "", false
		}
	}
	switch {
	case a.IsMulticast():
		return "MULTICAST", true
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "BROADCAST", true
	}
	local := f.host.isLocal(a)
	if !src {
		local = f.isLocalDst()
	}
	switch local {
	case 1:
		return "LOCAL", true
	case 0:
		return "UNICAST", true
	}
	return "", false
}

// tcpFlags is --tcp-flags MASK COMP (and --syn), and nft's tcp flags
// matches: the packet's flags, masked, equal one of comps (or, with bits,
// share a flag with comps[0]). Evaluate and the walk follow a SYN.
type tcpFlags struct {
	mask  uint8
	comps []uint8
	bits  bool // nft's "tcp flags syn" (in) and "tcp flags ! syn" (neg)
	neg   bool
}

const flagSYN = 0x02

func (m tcpFlags) match(f *flow, _ *Table) (float64, bool) {
	if f.proto != "tcp" {
		return 0, true
	}
	return yes(m.holdsSYN())
}

// holdsSYN reports whether the match holds for a SYN without other flags.
func (m tcpFlags) holdsSYN() bool {
	v := flagSYN & m.mask
	if m.bits {
		return (len(m.comps) > 0 && v&m.comps[0] != 0) != m.neg
	}
	return slices.Contains(m.comps, v) != m.neg
}

func parseTCPFlags(s string) (uint8, bool) {
	bits := map[string]uint8{"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
		"ECE": 0x40, "ECN": 0x40, "CWR": 0x80, "ALL": 0xff, "NONE": 0}
	var out uint8
	for _, f := range strings.Split(s, ",") {
		b, ok := bits[strings.ToUpper(f)]
		if !ok {
			return 0, false
		}
		out |= b
	}
	return out, true
}

// ctState is conntrack's state of the connection (-m conntrack --ctstate,
// -m state --state, nft ct state): the first packet of a new connection
// is NEW, and --ctstate's DNAT and SNAT say it was translated.
type ctState struct {
	states []string // upper case
	neg    bool
}

func (m ctState) match(f *flow, _ *Table) (float64, bool) {
	found := false
	for _, s := range m.states {
		switch s {
		case "NEW":
			found = found || !f.untracked
		case "UNTRACKED":
			found = found || f.untracked
		case "DNAT":
			found = found || f.dnat
		case "SNAT":
			found = found || f.snat
		case "ESTABLISHED", "RELATED", "INVALID":
		default:
			return unknown()
		}
	}
	return yes(found != m.neg)
}

// ctStatus is --ctstatus and nft ct status: of its bits, the walk knows
// DNAT and SNAT (a new connection is neither confirmed, assured nor seen
// to reply).
type ctStatus struct {
	statuses []string // upper case
	neg      bool
}

func (m ctStatus) match(f *flow, _ *Table) (float64, bool) {
	found := false
	for _, s := range m.statuses {
		switch s {
		case "DNAT":
			found = found || f.dnat
		case "SNAT":
			found = found || f.snat
		case "CONFIRMED", "ASSURED", "SEEN-REPLY", "SEEN_REPLY", "EXPECTED":
		default:
			return unknown()
		}
	}
	return yes(found != m.neg)
}

// markMatch is -m mark --mark VALUE/MASK: mark & MASK == VALUE.
type markMatch struct {
	value, mask uint32
	neg         bool
}

func (m markMatch) match(f *flow, _ *Table) (float64, bool) {
	if !f.markKnown {
		return unknown()
	}
	return yes((f.mark&m.mask == m.value) != m.neg)
}

// parseMark reads VALUE[/MASK] (hex or decimal); the mask defaults to all bits.
func parseMark(s string) (value, mask uint32, ok bool) {
	v, m, hasMask := strings.Cut(s, "/")
	value, ok = parseUint32(v)
	mask = 0xffffffff
	if ok && hasMask {
		mask, ok = parseUint32(m)
	}
	return value, mask, ok
}

func parseUint32(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 0, 32)
	return uint32(n), err == nil
}

// markOp is what a rule does to the packet's mark: mark = mark&and ^ xor
// (iptables' --set-xmark, and every nft mark statement with constants).
// unknown: the walk cannot tell (CONNMARK --restore-mark, meta mark set ct mark).
type markOp struct {
	and, xor uint32
	unknown  bool
}

func (op markOp) apply(f *flow) {
	if op.unknown {
		f.markKnown = false
		return
	}
	f.mark = f.mark&op.and ^ op.xor
}

// ifaceName reports whether dev is the interface pattern names: a
// trailing '+' (iptables) or '*' (nft) makes it a prefix.
func ifaceName(pattern, dev string) bool {
	if n := len(pattern); n > 0 && (pattern[n-1] == '+' || pattern[n-1] == '*') {
		return strings.HasPrefix(dev, pattern[:n-1])
	}
	return dev == pattern
}

// protoNum gives the IP protocol number of a name nft and iptables print
// ("tcp", "6"), or -1.
func protoNum(s string) int {
	switch strings.ToLower(s) {
	case "tcp":
		return 6
	case "udp":
		return 17
	case "icmp":
		return 1
	case "ipv6-icmp", "icmpv6":
		return 58
	case "sctp":
		return 132
	case "dccp":
		return 33
	case "udplite":
		return 136
	case "esp":
		return 50
	case "ah":
		return 51
	case "gre":
		return 47
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < 256 {
		return n
	}
	return -1
}

// iptablesMatcher types an iptables match option the walk knows (module
// is the last -m), or returns nil.
func iptablesMatcher(module, opt string, vals []string, neg bool) matcher {
	v := strings.Join(vals, " ")
	switch {
	case opt == "--src-type" || opt == "--dst-type":
		if module != "addrtype" || len(vals) != 1 {
			return nil
		}
		return addrType{src: opt == "--src-type", types: strings.Split(strings.ToUpper(v), ","), neg: neg}
	case module == "statistic" && (opt == "--mode" || opt == "--packet"):
		return always{}
	case module == "statistic" && opt == "--probability":
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 1 {
			return nil
		}
		if neg {
			p = 1 - p
		}
		return statistic{p}
	case module == "statistic" && opt == "--every":
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil
		}
		p := 1 / float64(n)
		if neg {
			p = 1 - p
		}
		return statistic{p}
	case opt == "--syn":
		return tcpFlags{mask: 0x17, comps: []uint8{flagSYN}, neg: neg}
	case opt == "--tcp-flags":
		if len(vals) != 2 {
			return nil
		}
		mask, ok1 := parseTCPFlags(vals[0])
		comp, ok2 := parseTCPFlags(vals[1])
		if !ok1 || !ok2 {
			return nil
		}
		return tcpFlags{mask: mask, comps: []uint8{comp}, neg: neg}
	case (module == "conntrack" && opt == "--ctstate") || (module == "state" && opt == "--state"):
		return ctState{states: strings.Split(strings.ToUpper(v), ","), neg: neg}
	case module == "conntrack" && opt == "--ctstatus":
		return ctStatus{statuses: strings.Split(strings.ToUpper(v), ","), neg: neg}
	case module == "mark" && opt == "--mark":
		value, mask, ok := parseMark(v)
		if !ok {
			return nil
		}
		return markMatch{value: value, mask: mask, neg: neg}
	}
	return nil
}

// iptablesMark reads a MARK or CONNMARK target's option into what it
// does to the packet's mark; false when it does nothing to it.
func iptablesMark(target, opt, v string) (markOp, bool) {
	if target == "connmark" {
		if opt == "--restore-mark" {
			return markOp{unknown: true}, true
		}
		return markOp{}, false // sets the connection's mark, not the packet's
	}
	if target != "mark" {
		return markOp{}, false
	}
	value, mask, ok := parseMark(v)
	if !ok {
		return markOp{unknown: true}, true
	}
	switch opt {
	case "--set-xmark":
		return markOp{and: ^mask, xor: value}, true
	case "--set-mark": // mark&^mask | value
		return markOp{and: ^(mask | value), xor: value}, true
	case "--or-mark":
		return markOp{and: ^value, xor: value}, true
	case "--and-mark":
		return markOp{and: value}, true
	case "--xor-mark":
		return markOp{and: 0xffffffff, xor: value}, true
	}
	return markOp{unknown: true}, true
}
