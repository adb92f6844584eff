package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// hits renders Evaluate's answer as "exact: TEXT" and "maybe: TEXT (if
// CONDS)" lines.
func hits(ms []Hit) []string {
	var out []string
	for _, m := range ms {
		if m.Exact {
			out = append(out, "exact: "+m.Rule.Text)
		} else {
			out = append(out, fmt.Sprintf("maybe: %s (if %q)", m.Rule.Text, m.Unchecked))
		}
	}
	return out
}

// TestEvaluateJumpTargets: a chain reached only by jump is evaluated for
// the directions whose base chains lead to it (through jumps and gotos
// and the jumps of verdict maps), with the conditions of the jumps that
// lead there; an unreferenced chain never. TCP flags matches are checked
// against the SYN. The rulesets were recorded from iptables-save and nft
// in a network namespace: the iptables one as reach fault builds its
// chain REACH-FAULT, jumped to from INPUT.
func TestEvaluateJumpTargets(t *testing.T) {
	ipt := mustParse(t, "iptables-save-jumps.txt")
	nft := mustParseNft(t, "nft-jumps.json", "nft-jumps.txt").Rules()
	const (
		// Every inbound packet may reach these chains by a verdict map,
		// whose key Evaluate does not look up.
		inline = `maybe: drop (if ["tcp dport vmap { 7200 : jump inline }"])`
		bymap  = `maybe: reject (if ["tcp dport vmap @svc"])`
	)
	for _, tc := range []struct {
		name  string
		rules []Rule
		dir   string
		port  uint16
		want  []string
	}{
		{"fault chain, SYN-only flags", ipt, "in", 7000, []string{`exact: -A REACH-FAULT -p tcp -m tcp --dport 7000 --tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment "reach-fault/1 11111111 refuse port=7000 exp=1796489000 own=5.6" -j REJECT --reject-with tcp-reset`}},
		{"fault chain is not on the way out", ipt, "out", 7000, []string{"exact: -A OUTCHAIN -p tcp -m tcp --dport 7000 -j REJECT --reject-with icmp-admin-prohibited"}},
		{"flags a SYN has not", ipt, "in", 7001, nil},
		{"negated SYN-only flags", ipt, "in", 7002, nil},
		{"--syn", ipt, "in", 7003, []string{"exact: -A REACH-FAULT -p tcp -m tcp --dport 7003 --tcp-flags FIN,SYN,RST,ACK SYN -j REJECT --reject-with icmp-port-unreachable"}},
		{"flags hold, a random match stays open", ipt, "in", 7004, []string{`maybe: -A REACH-FAULT -p tcp -m tcp --dport 7004 --tcp-flags SYN,ACK SYN -m statistic --mode random --probability 0.50000000000 -j DROP (if ["--mode random" "--probability 0.50000000000"])`}},
		{"output-only chain, in", ipt, "in", 7005, nil},
		{"output-only chain, out", ipt, "out", 7005, []string{"exact: -A OUTCHAIN -p tcp -m tcp --dport 7005 -j DROP"}},
		{"chain of both hooks, in", ipt, "in", 7006, []string{"exact: -A SHARED -p tcp -m tcp --dport 7006 -j DROP"}},
		{"chain of both hooks, out", ipt, "out", 7006, []string{"exact: -A SHARED -p tcp -m tcp --dport 7006 -j DROP"}},
		{"goto behind a jump", ipt, "in", 7150, []string{"exact: -A DEEP -p tcp -m tcp --dport 7150 -j REJECT --reject-with tcp-reset"}},
		{"unreferenced chain", ipt, "in", 7007, nil},
		{"unreferenced chain, out", ipt, "out", 7007, nil},

		{"nft fault chain, flags syn / fin,syn,rst,ack", nft, "in", 7000, []string{"exact: tcp dport 7000 tcp flags syn / fin,syn,rst,ack reject with tcp reset"}},
		{"nft fault chain is not on the way out", nft, "out", 7000, []string{"exact: tcp dport 7000 reject with icmpx admin-prohibited"}},
		{"nft flags ack / syn,ack", nft, "in", 7001, []string{inline, bymap}},
		{"nft flags syn (bit set)", nft, "in", 7002, []string{"exact: tcp dport 7002 tcp flags syn reject"}},
		{"nft flags ! syn", nft, "in", 7003, []string{inline, bymap}},
		{"nft flags == syn", nft, "in", 7004, []string{"exact: tcp dport 7004 tcp flags == syn reject with icmpx admin-prohibited"}},
		{"nft flags != syn", nft, "in", 7005, []string{inline, bymap}},
		{"nft flags in a set", nft, "in", 7006, []string{"exact: tcp dport 7006 tcp flags { syn | ack, syn } reject"}},
		{"nft flags syn,ack / syn,ack", nft, "in", 7007, []string{inline, bymap}},
		{"nft flags != syn / fin,syn,rst,ack", nft, "in", 7008, []string{inline, bymap}},
		{"nft chain of both hooks, out", nft, "out", 7009, []string{"exact: tcp dport 7009 drop"}},
		{"nft goto", nft, "in", 7150, []string{"exact: tcp dport 7150 reject with tcp reset"}},
		{"nft unreferenced chain", nft, "in", 7010, []string{inline, bymap}},
		{"nft out: no verdict map on the way", nft, "out", 7010, nil},
	} {
		p := pkt(tc.dir, netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), tc.port).String())
		if got := hits(Evaluate(tc.rules, p)); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
