package firewall

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Set is a named nftables set or map. kube-proxy's nftables mode keeps
// its services in maps (service-ips: "ClusterIP . tcp . port" to "goto
// service-..."), Docker's nftables backend its bridges.
type Set struct {
	Name string
	// Type is the element type, one per part of a concatenation:
	// ["ipv4_addr", "inet_proto", "inet_service"].
	Type []string
	// Map is what a map maps to ("verdict", "ipv4_addr", ...); "" for a set.
	Map      string
	Flags    []string // "interval", "dynamic", "timeout", "constant", ...
	Comment  string
	Elements []Element
}

// dynamic reports whether traffic adds and removes elements (a set that
// remembers clients, as session affinity does): its elements listed when
// the rules were read say nothing sure of the next packet.
func (s *Set) dynamic() bool {
	for _, f := range s.Flags {
		if f == "dynamic" || f == "timeout" {
			return true
		}
	}
	return false
}

// Element is one element of a set or map.
type Element struct {
	Key     string // as nft prints it: "198.19.2.10 . tcp . 80"
	Value   string // a map's value: "goto reject-chain", "198.19.1.2"; "" in a set
	Comment string
	key     []part
	verdict *verdict // a verdict map's value
}

// verdict is a verdict as a map holds it.
type verdict struct {
	kind  string // "accept", "drop", "return", "continue", "jump", "goto", "queue"
	chain string // for jump and goto
}

func (v *verdict) String() string {
	if v.chain != "" {
		return v.kind + " " + v.chain
	}
	return v.kind
}

// value is one value of an nft expression or element.
type value struct {
	kind byte // vAddr, vNum or vStr
	addr netip.Addr
	num  uint64
	str  string
}

const (
	vAddr = iota + 1
	vNum
	vStr
)

func (v value) String() string {
	switch v.kind {
	case vAddr:
		return v.addr.String()
	case vNum:
		return strconv.FormatUint(v.num, 10)
	}
	return v.str
}

// part is one part of an element's key: a value, a prefix or a range.
type part struct {
	lo, hi value // equal for a single value
	prefix netip.Prefix
}

func (p part) String() string {
	switch {
	case p.prefix.IsValid():
		return p.prefix.String()
	case p.lo != p.hi:
		return p.lo.String() + "-" + p.hi.String()
	}
	return p.lo.String()
}

func parseValue(raw json.RawMessage) (value, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if a, err := netip.ParseAddr(s); err == nil {
			return value{kind: vAddr, addr: a.Unmap()}, true
		}
		return value{kind: vStr, str: s}, true
	}
	var n uint64
	if json.Unmarshal(raw, &n) == nil {
		return value{kind: vNum, num: n}, true
	}
	return value{}, false
}

func parsePart(raw json.RawMessage) (part, bool) {
	if v, ok := parseValue(raw); ok {
		return part{lo: v, hi: v}, true
	}
	var obj struct {
		Prefix *struct {
			Addr string
			Len  int
		}
		Range []json.RawMessage
	}
	if json.Unmarshal(raw, &obj) != nil {
		return part{}, false
	}
	if px := obj.Prefix; px != nil {
		a, err := netip.ParseAddr(px.Addr)
		if err != nil || px.Len < 0 || px.Len > a.Unmap().BitLen() {
			return part{}, false
		}
		p := netip.PrefixFrom(a.Unmap(), px.Len).Masked()
		return part{lo: value{kind: vAddr, addr: p.Addr()}, hi: value{kind: vAddr, addr: p.Addr()}, prefix: p}, true
	}
	if len(obj.Range) == 2 {
		lo, ok1 := parseValue(obj.Range[0])
		hi, ok2 := parseValue(obj.Range[1])
		if ok1 && ok2 && lo.kind == hi.kind && lo.kind != vStr && !less(hi, lo) {
			return part{lo: lo, hi: hi}, true
		}
	}
	return part{}, false
}

func less(a, b value) bool {
	if a.kind == vAddr {
		return a.addr.Less(b.addr)
	}
	return a.num < b.num
}

// parseKey reads an element's key: a value, prefix, range or
// concatenation, possibly wrapped with its comment ({"elem": {"val": ...,
// "comment": ...}}).
func parseKey(raw json.RawMessage) (parts []part, comment string, ok bool) {
	var w struct {
		Elem *struct {
			Val     json.RawMessage
			Comment string
		}
		Concat []json.RawMessage
	}
	if json.Unmarshal(raw, &w) == nil {
		if w.Elem != nil {
			parts, _, ok = parseKey(w.Elem.Val)
			return parts, w.Elem.Comment, ok
		}
		if len(w.Concat) > 0 {
			for _, c := range w.Concat {
				p, ok := parsePart(c)
				if !ok {
					return nil, "", false
				}
				parts = append(parts, p)
			}
			return parts, "", true
		}
	}
	p, ok := parsePart(raw)
	return []part{p}, "", ok
}

func parseVerdict(raw json.RawMessage) (*verdict, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) != 1 {
		return nil, false
	}
	for kind, body := range m {
		switch kind {
		case "accept", "drop", "return", "continue", "queue":
			return &verdict{kind: kind}, true
		case "jump", "goto":
			var j struct{ Target string }
			if json.Unmarshal(body, &j) != nil || j.Target == "" {
				return nil, false
			}
			return &verdict{kind: kind, chain: j.Target}, true
		}
	}
	return nil, false
}

// parseElements reads a set's elements, or a map's ([key, value] pairs).
// An element the walk cannot read keeps its JSON as its key, with no
// parts: it matches nothing sure.
func parseElements(list []json.RawMessage, isMap bool) []Element {
	out := make([]Element, 0, len(list))
	for _, raw := range list {
		e := Element{}
		keyRaw := raw
		if isMap {
			var pair []json.RawMessage
			if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
				out = append(out, Element{Key: string(raw)})
				continue
			}
			keyRaw = pair[0]
			if v, ok := parseVerdict(pair[1]); ok {
				e.verdict, e.Value = v, v.String()
			} else if val, ok := parseValue(pair[1]); ok {
				e.Value = val.String()
			} else {
				e.Value = string(pair[1])
			}
		}
		parts, comment, ok := parseKey(keyRaw)
		if ok {
			e.key = parts
			keys := make([]string, len(parts))
			for i, p := range parts {
				keys[i] = p.String()
			}
			e.Key = strings.Join(keys, " . ")
		} else {
			e.Key = string(keyRaw)
		}
		e.Comment = comment
		out = append(out, e)
	}
	return out
}

// addNftSet reads a "set" or "map" object of nft -j into its table, which
// table(family, name) finds or makes.
func addNftSet(raw json.RawMessage, isMap bool, table func(family, name string) *Table) error {
	var js struct {
		Family, Table, Name, Comment string
		Type, Map, Flags             json.RawMessage
		Elem                         []json.RawMessage
	}
	if err := json.Unmarshal(raw, &js); err != nil {
		return err
	}
	s := Set{Name: js.Name, Comment: js.Comment, Type: stringList(js.Type), Flags: stringList(js.Flags)}
	if isMap {
		if s.Map = strings.Join(stringList(js.Map), " . "); s.Map == "" {
			s.Map = "verdict"
		}
	}
	s.Elements = parseElements(js.Elem, isMap)
	t := table(js.Family, js.Table)
	t.Sets = append(t.Sets, s)
	return nil
}

// stringList reads "a" or ["a", "b"].
func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// keyExpr is one nft expression the walk evaluates on a packet.
type keyExpr struct {
	kind  string // "daddr", "saddr", "dport", "sport", "l4proto", "iifname", "oifname", "mark", "fib", "nfproto", "numgen"
	proto string // a payload's protocol: "ip", "ip6", "tcp", "udp", "th", ...
	src   bool   // fib saddr
	mask  uint32 // mark & mask
	mod   uint64 // numgen random mod N offset O
	off   uint64
}

// parseKeyExpr reads an expression (or a concatenation of them) the walk
// can evaluate; false for any other.
func parseKeyExpr(raw json.RawMessage) ([]keyExpr, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) != 1 {
		return nil, false
	}
	for kind, body := range m {
		switch kind {
		case "concat":
			var list []json.RawMessage
			if json.Unmarshal(body, &list) != nil || len(list) == 0 {
				return nil, false
			}
			var out []keyExpr
			for _, e := range list {
				k, ok := parseKeyExpr(e)
				if !ok || len(k) != 1 || k[0].kind == "numgen" {
					return nil, false
				}
				out = append(out, k[0])
			}
			return out, true
		case "payload":
			var pl struct{ Protocol, Field string }
			if json.Unmarshal(body, &pl) != nil {
				return nil, false
			}
			switch {
			case (pl.Protocol == "ip" || pl.Protocol == "ip6") && (pl.Field == "daddr" || pl.Field == "saddr"):
				return []keyExpr{{kind: pl.Field, proto: pl.Protocol}}, true
			case pl.Field == "dport" || pl.Field == "sport":
				return []keyExpr{{kind: pl.Field, proto: pl.Protocol}}, true
			case pl.Protocol == "ip" && pl.Field == "protocol", pl.Protocol == "ip6" && pl.Field == "nexthdr":
				return []keyExpr{{kind: "l4proto", proto: pl.Protocol}}, true
			}
		case "meta":
			var mk struct{ Key string }
			if json.Unmarshal(body, &mk) != nil {
				return nil, false
			}
			switch mk.Key {
			case "l4proto", "nfproto", "mark":
				return []keyExpr{{kind: mk.Key, mask: 0xffffffff}}, true
			case "iifname", "iif":
				return []keyExpr{{kind: "iifname"}}, true
			case "oifname", "oif":
				return []keyExpr{{kind: "oifname"}}, true
			}
		case "fib":
			var fb struct {
				Result string
				Flags  json.RawMessage
			}
			if json.Unmarshal(body, &fb) != nil || fb.Result != "type" {
				return nil, false
			}
			flags := stringList(fb.Flags)
			if len(flags) != 1 || (flags[0] != "daddr" && flags[0] != "saddr") {
				return nil, false // fib daddr . iif type: the type on one interface
			}
			return []keyExpr{{kind: "fib", src: flags[0] == "saddr"}}, true
		case "numgen":
			var ng struct {
				Mode        string
				Mod, Offset uint64
			}
			if json.Unmarshal(body, &ng) != nil || ng.Mode != "random" || ng.Mod == 0 {
				return nil, false
			}
			return []keyExpr{{kind: "numgen", mod: ng.Mod, off: ng.Offset}}, true
		case "&":
			var and []json.RawMessage
			if json.Unmarshal(body, &and) != nil || len(and) != 2 {
				return nil, false
			}
			k, ok := parseKeyExpr(and[0])
			mask, ok2 := parseValue(and[1])
			if !ok || !ok2 || len(k) != 1 || k[0].kind != "mark" || mask.kind != vNum || mask.num > 0xffffffff {
				return nil, false
			}
			k[0].mask = uint32(mask.num)
			return k, true
		}
	}
	return nil, false
}

// eval gives the expression's value for f: present false when the packet
// has no such field (an ip6 address of an IPv4 packet, a udp port of a
// TCP one), known false when the walk cannot tell.
func (k keyExpr) eval(f *flow) (v value, present, known bool) {
	v4 := f.dst.Addr().Unmap().Is4()
	switch k.kind {
	case "daddr", "saddr":
		if (k.proto == "ip") != v4 {
			return value{}, false, true
		}
		a := f.dst.Addr().Unmap()
		if k.kind == "saddr" {
			if a = f.src.Unmap(); !a.IsValid() {
				return value{}, true, false
			}
		}
		return value{kind: vAddr, addr: a}, true, true
	case "dport", "sport":
		if k.proto != "th" && protoNum(k.proto) != protoNum(f.proto) {
			return value{}, false, true
		}
		if k.kind == "sport" {
			return value{}, true, false // the client's port, chosen when it connects
		}
		return value{kind: vNum, num: uint64(f.dst.Port())}, true, true
	case "l4proto":
		if (k.proto == "ip" && !v4) || (k.proto == "ip6" && v4) {
			return value{}, false, true
		}
		return value{kind: vStr, str: f.proto}, true, true
	case "nfproto":
		if v4 {
			return value{kind: vStr, str: "ipv4"}, true, true
		}
		return value{kind: vStr, str: "ipv6"}, true, true
	case "mark":
		return value{kind: vNum, num: uint64(f.mark & k.mask)}, true, f.markKnown
	case "iifname", "oifname":
		d := f.out
		if k.kind == "iifname" {
			d = f.in
		}
		return value{kind: vStr, str: d.name}, true, d.known
	case "fib":
		t, ok := f.addrType(k.src)
		return value{kind: vStr, str: strings.ToLower(t)}, true, ok
	}
	return value{}, true, false
}

// contains reports whether p holds v, and false for known when the two
// cannot be compared (a port named by its service, a protocol number
// against a name the walk does not know).
func (p part) contains(v value) (in, known bool) {
	if p.prefix.IsValid() {
		if v.kind != vAddr {
			return false, false
		}
		return p.prefix.Contains(v.addr), true
	}
	lo, hi := p.lo, p.hi
	if v.kind == vStr && lo.kind == vNum || v.kind == vNum && lo.kind == vStr {
		// A protocol, as a name on one side and a number on the other.
		a, b := protoNum(v.String()), protoNum(lo.String())
		if a < 0 || b < 0 || lo != hi {
			return false, false
		}
		return a == b, true
	}
	if v.kind != lo.kind {
		return false, false
	}
	switch v.kind {
	case vStr:
		return ifaceName(lo.str, v.str) || strings.EqualFold(lo.str, v.str) && lo.str != "", true
	case vAddr:
		return lo.addr.Compare(v.addr) <= 0 && v.addr.Compare(hi.addr) <= 0, true
	}
	return lo.num <= v.num && v.num <= hi.num, true
}

// lookup finds the elements whose key holds vals. known: vals were all
// known and every element could be compared; then at most the first
// match is returned. Otherwise, every element that may hold them.
func lookup(elems []Element, vals []value, valKnown []bool) (idx []int, known bool) {
	known = true
	for i := range elems {
		e := &elems[i]
		if len(e.key) != len(vals) {
			known = false
			idx = append(idx, i)
			continue
		}
		match, sure := true, true
		for j, p := range e.key {
			if !valKnown[j] {
				sure = false
				continue
			}
			in, ok := p.contains(vals[j])
			if !ok {
				sure = false
			} else if !in {
				match = false
				break
			}
		}
		switch {
		case !match:
		case sure && known:
			return []int{i}, true
		default:
			known = false
			idx = append(idx, i)
		}
	}
	return idx, known
}

// exprMatch is an nft match the walk evaluates: an expression compared
// with a value, an inline set, or a named set (@NAME).
type exprMatch struct {
	key   []keyExpr
	op    string // "==", "!=", "<", "<=", ">", ">="
	elems []Element
	set   string // a named set, instead of elems
}

func (m exprMatch) match(f *flow, t *Table) (float64, bool) {
	if ps, ok := m.srcPrefixes(); ok && !f.src.IsValid() {
		if _, present, _ := m.key[0].eval(f); !present {
			return 0, true
		}
		in, known := f.srcIs(ps)
		if !known {
			return unknown()
		}
		return yes(in == (m.op == "=="))
	}
	vals := make([]value, len(m.key))
	valKnown := make([]bool, len(m.key))
	for i, k := range m.key {
		if k.kind == "numgen" {
			return m.numgen(k)
		}
		v, present, known := k.eval(f)
		if !present {
			return 0, true // the field's protocol is not the packet's: no match either way
		}
		vals[i], valKnown[i] = v, known
	}
	switch m.op {
	case "<", "<=", ">", ">=":
		if len(vals) != 1 || len(m.elems) != 1 || !valKnown[0] || len(m.elems[0].key) != 1 {
			return unknown()
		}
		a, b := vals[0], m.elems[0].key[0].lo
		if a.kind != b.kind || a.kind == vStr {
			return unknown()
		}
		c := a.addr.Compare(b.addr)
		if a.kind == vNum {
			c = cmpNum(a.num, b.num)
		}
		return yes(c < 0 && m.op[0] == '<' || c > 0 && m.op[0] == '>' || c == 0 && len(m.op) == 2)
	}
	elems := m.elems
	if m.set != "" {
		s := t.Set(m.set)
		if s == nil || s.dynamic() {
			return unknown()
		}
		elems = s.Elements
	}
	idx, known := lookup(elems, vals, valKnown)
	if !known {
		return unknown()
	}
	return yes((len(idx) > 0) == (m.op != "!="))
}

// srcPrefixes gives the addresses of a match on the source address
// alone (ip saddr 198.19.1.0/24, ip saddr != { ... }).
func (m exprMatch) srcPrefixes() ([]netip.Prefix, bool) {
	if len(m.key) != 1 || m.key[0].kind != "saddr" || m.set != "" || (m.op != "==" && m.op != "!=") {
		return nil, false
	}
	var ps []netip.Prefix
	for _, e := range m.elems {
		if len(e.key) != 1 {
			return nil, false
		}
		p := e.key[0]
		switch {
		case p.prefix.IsValid():
			ps = append(ps, p.prefix)
		case p.lo.kind == vAddr && p.lo == p.hi:
			ps = append(ps, netip.PrefixFrom(p.lo.addr, p.lo.addr.BitLen()))
		default:
			return nil, false
		}
	}
	return ps, true
}

// learn narrows the packet with an assumption about m: its source
// address, whether its destination is local (fib daddr type local), or
// an interface it names alone.
func (m exprMatch) learn(f *flow, held bool) {
	if ps, ok := m.srcPrefixes(); ok {
		f.learnSrc(ps, held == (m.op == "=="))
		return
	}
	if len(m.key) == 1 && m.key[0].kind == "fib" && !m.key[0].src && len(m.elems) == 1 &&
		m.elems[0].Key == "local" && (m.op == "==" || m.op == "!=") {
		f.learnLocalDst(held == (m.op == "=="))
		return
	}
	if len(m.key) != 1 || (m.key[0].kind != "iifname" && m.key[0].kind != "oifname") || m.set != "" ||
		len(m.elems) != 1 || len(m.elems[0].key) != 1 || m.elems[0].key[0].lo.kind != vStr {
		return
	}
	if m.op != "==" && m.op != "!=" {
		return
	}
	f.learnIface(m.key[0].kind == "iifname", m.elems[0].key[0].lo.str, held == (m.op == "=="))
}

// numgen gives the chance that a random number matches.
func (m exprMatch) numgen(k keyExpr) (float64, bool) {
	if len(m.key) != 1 || m.set != "" || m.op != "==" && m.op != "!=" {
		return unknown()
	}
	counts, _, ok := numgenShares(k, m.elems)
	if !ok {
		return unknown()
	}
	n := uint64(0)
	for _, c := range counts {
		n += c
	}
	p := float64(n) / float64(k.mod)
	if m.op == "!=" {
		p = 1 - p
	}
	return p, true
}

// numgenShares counts the values of a random number (numgen random mod N
// offset O: O to O+N-1) each element holds, and those none holds; false
// when an element is not a number or range of them, or elements overlap.
func numgenShares(k keyExpr, elems []Element) (counts []uint64, miss uint64, ok bool) {
	lo, hi := k.off, k.off+k.mod-1
	if hi < lo {
		return nil, 0, false // wraps around
	}
	counts = make([]uint64, len(elems))
	total := uint64(0)
	for i, e := range elems {
		if len(e.key) != 1 || e.key[0].lo.kind != vNum || e.key[0].prefix.IsValid() {
			return nil, 0, false
		}
		a, b := max(e.key[0].lo.num, lo), min(e.key[0].hi.num, hi)
		if a <= b {
			counts[i] = b - a + 1
			total += counts[i]
		}
	}
	if total > k.mod {
		return nil, 0, false
	}
	return counts, k.mod - total, true
}

func cmpNum(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// vmap is an nft verdict map statement: the key, and the map inline
// (elems) or named (set).
type vmap struct {
	key   []keyExpr
	elems []Element
	set   string
}

// parseVmap reads {"key": ..., "data": "@name" | {"set": [[k, verdict], ...]}}.
func parseVmap(raw json.RawMessage) (*vmap, error) {
	var vm struct{ Key, Data json.RawMessage }
	if err := json.Unmarshal(raw, &vm); err != nil {
		return nil, err
	}
	key, ok := parseKeyExpr(vm.Key)
	if !ok {
		return nil, fmt.Errorf("key %s", vm.Key)
	}
	out := &vmap{key: key}
	var name string
	if json.Unmarshal(vm.Data, &name) == nil && strings.HasPrefix(name, "@") {
		out.set = name[1:]
		return out, nil
	}
	var set struct{ Set []json.RawMessage }
	if json.Unmarshal(vm.Data, &set) != nil || len(set.Set) == 0 {
		return nil, fmt.Errorf("map %s", vm.Data)
	}
	out.elems = parseElements(set.Set, true)
	return out, nil
}

// parseRight reads a match's right side into elements: a value, prefix,
// range or concatenation, an inline set, or a list of flags.
func parseRight(raw json.RawMessage) (elems []Element, set string, ok bool) {
	var name string
	if json.Unmarshal(raw, &name) == nil && strings.HasPrefix(name, "@") {
		return nil, name[1:], true
	}
	var s struct{ Set []json.RawMessage }
	var list []json.RawMessage
	switch {
	case json.Unmarshal(raw, &s) == nil && len(s.Set) > 0:
		elems = parseElements(s.Set, false)
	case json.Unmarshal(raw, &list) == nil && len(list) > 0: // flags: ["established", "related"]
		elems = parseElements(list, false)
	default:
		elems = parseElements([]json.RawMessage{raw}, false)
	}
	for _, e := range elems {
		if e.key == nil {
			return nil, "", false
		}
	}
	return elems, "", true
}

// natTo is where a translation sends a packet: an address (or range) and
// a port (or range); zero parts leave the packet's own.
type natTo struct {
	addrLo, addrHi netip.Addr
	portLo, portHi uint16
}

// parseNatTo reads what iptables-save prints after --to-destination,
// --to-source or --to-ports: "198.19.0.2:80", "198.19.0.2-198.19.0.4",
// "[fd00::2]:80-90", ":8080", or ports alone ("443", "1024-2048") when
// portsOnly.
func parseNatTo(s string, portsOnly bool) (*natTo, bool) {
	n := &natTo{}
	addrs, ports := s, ""
	if portsOnly {
		addrs, ports = "", s
	} else if strings.HasPrefix(s, "[") {
		// [a]:p, [a]-[b]:p
		i := strings.LastIndex(s, "]")
		addrs, ports = s[:i+1], strings.TrimPrefix(s[i+1:], ":")
		if len(ports) == len(s[i+1:]) && ports != "" {
			return nil, false
		}
		addrs = strings.NewReplacer("[", "", "]", "").Replace(addrs)
	} else if strings.Count(s, ":") == 1 {
		addrs, ports, _ = strings.Cut(s, ":")
	}
	if addrs != "" {
		lo, hi, isRange := strings.Cut(addrs, "-")
		a, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, false
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(hi); err != nil || b.Less(a) || a.Is4() != b.Is4() {
				return nil, false
			}
		}
		n.addrLo, n.addrHi = a.Unmap(), b.Unmap()
	}
	if ports != "" {
		lo, hi, isRange := strings.Cut(ports, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, false
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil || b < a {
				return nil, false
			}
		}
		n.portLo, n.portHi = a, b
	}
	return n, true
}

// nftNat reads a dnat, snat, redirect or masquerade statement's address
// and port: single values or ranges; false for anything else (a map).
func nftNat(raw json.RawMessage) (*natTo, bool) {
	var st struct{ Addr, Port json.RawMessage }
	if json.Unmarshal(raw, &st) != nil {
		return &natTo{}, true // masquerade and redirect may say nothing
	}
	n := &natTo{}
	if len(st.Addr) > 0 {
		p, ok := parsePart(st.Addr)
		if !ok || p.prefix.IsValid() || p.lo.kind != vAddr {
			return nil, false
		}
		n.addrLo, n.addrHi = p.lo.addr, p.hi.addr
	}
	if len(st.Port) > 0 {
		p, ok := parsePart(st.Port)
		if !ok || p.lo.kind != vNum || p.hi.num > 65535 {
			return nil, false
		}
		n.portLo, n.portHi = uint16(p.lo.num), uint16(p.hi.num)
	}
	return n, true
}
