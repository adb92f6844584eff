package fault

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// nftTable and nftChain are reach's own: nothing else is ever written.
const (
	nftTable = "reach_fault"
	nftChain = "input"
)

// rule is one rule of a fault as read back: where it is and what its
// comment and source match say. Handle is nft's rule handle, or for
// iptables the rule's number in REACH-FAULT (1-based) of Tool's table.
type rule struct {
	Tool    string // "nft", "iptables" or "ip6tables"
	Handle  int
	Comment string
	Source  netip.Prefix
}

// parseNftTable reads `nft -j list table inet reach_fault` and returns the
// rules of its input chain. Rules of other tables or chains (there are
// none, but the input is the system's) are skipped.
func parseNftTable(out []byte) ([]rule, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("fault: reading nft -j output: %w", err)
	}
	var rules []rule
	for _, obj := range doc.Nftables {
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var jr struct {
			Family, Table, Chain, Comment string
			Handle                        int
			Expr                          []map[string]json.RawMessage
		}
		if err := json.Unmarshal(raw, &jr); err != nil {
			return nil, fmt.Errorf("fault: reading an nft rule: %w", err)
		}
		if jr.Family != "inet" || jr.Table != nftTable || jr.Chain != nftChain {
			continue
		}
		if jr.Handle <= 0 {
			return nil, fmt.Errorf("fault: nft rule without a handle: %s", raw)
		}
		r := rule{Tool: "nft", Handle: jr.Handle, Comment: jr.Comment}
		for _, e := range jr.Expr {
			if p, ok := nftSaddr(e["match"]); ok {
				r.Source = p
			}
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// nftSaddr reads a match on ip saddr or ip6 saddr: an address or a prefix.
func nftSaddr(raw json.RawMessage) (netip.Prefix, bool) {
	if raw == nil {
		return netip.Prefix{}, false
	}
	var m struct {
		Op   string
		Left struct {
			Payload struct{ Protocol, Field string }
		}
		Right json.RawMessage
	}
	if json.Unmarshal(raw, &m) != nil || m.Op != "==" || m.Left.Payload.Field != "saddr" {
		return netip.Prefix{}, false
	}
	if pr := m.Left.Payload.Protocol; pr != "ip" && pr != "ip6" {
		return netip.Prefix{}, false
	}
	var addr string
	if json.Unmarshal(m.Right, &addr) == nil {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	var pf struct {
		Prefix struct {
			Addr string
			Len  int
		}
	}
	if json.Unmarshal(m.Right, &pf) != nil {
		return netip.Prefix{}, false
	}
	a, err := netip.ParseAddr(pf.Prefix.Addr)
	if err != nil {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(a, pf.Prefix.Len)
	return p, p.IsValid()
}

// nftAddScript is the nft transaction that adds one fault's rule: the
// table and its chain are created when missing (add is idempotent). The
// chain hooks input before the usual filter priority, so the fault holds
// whatever other tables accept; it matches only a connection's first SYN.
func nftAddScript(m Marker, src netip.Prefix) string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table inet %s\n", nftTable)
	fmt.Fprintf(&b, "add chain inet %s %s { type filter hook input priority -10; policy accept; }\n", nftTable, nftChain)
	fmt.Fprintf(&b, "add rule inet %s %s ", nftTable, nftChain)
	if src.IsValid() {
		fam := "ip"
		if src.Addr().Is6() {
			fam = "ip6"
		}
		fmt.Fprintf(&b, "%s saddr %s ", fam, src)
	}
	fmt.Fprintf(&b, "tcp dport %d tcp flags & (syn | ack) == syn ", m.Port)
	if n := hits(m.Probability); n < probScale {
		fmt.Fprintf(&b, "numgen random mod %d < %d ", probScale, n)
	}
	switch m.Mode {
	case Refuse:
		b.WriteString("reject with tcp reset")
	case Drop:
		b.WriteString("drop")
	case RejectICMP:
		b.WriteString("reject with icmpx type port-unreachable")
	}
	fmt.Fprintf(&b, " comment %q\n", m.String())
	return b.String()
}

// nftDeleteScript deletes rules by handle, and the table with them when
// they are all it holds.
func nftDeleteScript(handles []int, table bool) string {
	var b strings.Builder
	if table {
		fmt.Fprintf(&b, "delete table inet %s\n", nftTable)
		return b.String()
	}
	for _, h := range handles {
		fmt.Fprintf(&b, "delete rule inet %s %s handle %d\n", nftTable, nftChain, h)
	}
	return b.String()
}
