package firewall

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

func mustRead(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParse(t testing.TB, name string) []Rule {
	t.Helper()
	rs, err := ParseIptablesSave(mustRead(t, name), "ip")
	if err != nil {
		t.Fatal(err)
	}
	return rs.Rules()
}

func mustParseNft(t testing.TB, js, txt string) *Ruleset {
	t.Helper()
	rs, err := ParseNftJSON([]byte(mustRead(t, js)), ParseNftText(mustRead(t, txt)))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// checkRuleset checks what every parsed ruleset keeps: each rule sits in
// the chain and table it names, and Rules lists each rule and policy once.
func checkRuleset(t *testing.T, rs *Ruleset) {
	t.Helper()
	n := 0
	for _, tb := range rs.Tables {
		for _, c := range tb.Chains {
			n += len(c.Rules)
			if c.Policy != "" {
				n++
			}
			for _, r := range c.Rules {
				if r.Table != tb.Label() || r.Chain != c.Name || r.Hook != c.Hook || r.Source != tb.Source {
					t.Fatalf("rule %q of %s/%s says %s/%s (hook %q, chain's %q)", r.Text, tb.Label(), c.Name, r.Table, r.Chain, r.Hook, c.Hook)
				}
			}
		}
	}
	if got := len(rs.Rules()); got != n {
		t.Fatalf("Rules lists %d, want %d rules and policies", got, n)
	}
}

func pkt(dir, dst string) Packet {
	return Packet{Direction: dir, Src: netip.MustParseAddrPort("198.18.0.5:40000"), Dst: netip.MustParseAddrPort(dst)}
}

// describe renders matches as "text|exact" lines for comparison.
func describe(ms []Hit) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString(m.Rule.Text)
		if m.Exact {
			b.WriteString(" |exact")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestEvaluateIptablesSave(t *testing.T) {
	rules := mustParse(t, "iptables-save.txt")
	tests := []struct {
		name string
		p    Packet
		want string
	}{
		{"drop by port", pkt("in", "198.18.0.2:7707"), "-A INPUT -p tcp -m tcp --dport 7707 -j DROP |exact\n"},
		{"multiport reject", pkt("in", "198.18.0.2:8050"), "-A INPUT -d 198.18.0.2/32 -p tcp -m multiport --dports 80,8000:8100 -j REJECT --reject-with tcp-reset |exact\n"},
		{"other address: only the jump target's negated port rule", pkt("in", "198.18.0.3:8050"), "-A custom -p tcp -m tcp ! --dport 1:1024 -j DROP |exact\n"},
		{"accepted ssh", pkt("in", "198.18.0.2:22"), "-A INPUT -s 198.18.0.0/24 -p tcp -m tcp --dport 22 -m comment --comment \"ssh from \\\"lab\\\"\" -j ACCEPT |exact\n"},
		{"output reject", pkt("out", "198.18.0.9:9"), "-A OUTPUT -p tcp -m tcp --dport 9 -j REJECT --reject-with icmp-admin-prohibited |exact\n"},
		{"output other port", pkt("out", "198.18.0.9:10"), ""},
		{"ipv6 packet, ipv4 rules", pkt("in", "[fd00::2]:7707"), ""},
	}
	for _, tt := range tests {
		if got := describe(Evaluate(rules, tt.p)); got != tt.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
	var reject Rule
	for _, r := range rules {
		if strings.Contains(r.Text, "--dport 7708") {
			reject = r
		}
	}
	if reject.Verdict != "reject" || reject.RejectWith != "icmp-port-unreachable" {
		t.Errorf("REJECT rule parsed as %+v", reject)
	}
}

func TestEvaluateNft(t *testing.T) {
	rules := mustParseNft(t, "nft.json", "nft.txt").Rules()
	var inet []Rule
	for _, r := range rules {
		if r.Table == "inet t" {
			inet = append(inet, r)
		}
	}
	tests := []struct {
		name string
		p    Packet
		want string
	}{
		{"set and prefix", pkt("in", "198.18.0.2:7050"), "tcp dport { 22, 7000-7100 } ip daddr 198.18.0.0/24 reject with tcp reset |exact\n"},
		{"th dport drop", pkt("in", "198.18.0.2:5432"), "tcp dport 5432 drop |exact\n"},
		{"policy drop", pkt("in", "198.18.0.2:9999"), "chain input { type filter hook input priority 0; policy drop; } |exact\n"},
		{"source outside the accepted set", pkt("in", "198.18.0.2:6000"), "chain input { type filter hook input priority 0; policy drop; } |exact\n"},
		{"accepted by source set", Packet{Direction: "in", Src: netip.MustParseAddrPort("198.18.1.7:4000"), Dst: netip.MustParseAddrPort("198.18.0.2:6000")}, "tcp dport 6000 ip saddr { 198.18.1.0/24, 198.18.2.1 } accept |exact\n"},
		{"v6 admin-prohibited", pkt("in", "[fd00::2]:443"), "ip6 daddr fd00::2 tcp dport 443 reject with icmpx admin-prohibited |exact\n"},
		{"outgoing untouched", pkt("out", "198.18.0.2:5432"), ""},
	}
	for _, tt := range tests {
		ms := Evaluate(inet, tt.p)
		// Unchecked rules (ct state, iif) may precede; keep only exact ones.
		var exact []Hit
		for _, m := range ms {
			if m.Exact {
				exact = append(exact, m)
			}
		}
		if got := describe(exact); got != tt.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
	// iptables-nft rules appear in nft too; their REJECT is an xt target.
	var ipt Rule
	for _, r := range rules {
		if r.Table == "ip filter" && strings.Contains(r.Text, "dport 7708") {
			ipt = r
		}
	}
	if ipt.Verdict != "reject" || ipt.Text != "tcp dport 7708 reject" {
		t.Errorf("xt REJECT rule: %+v", ipt)
	}
}

// Interface matches are decided when the packet's interfaces are known
// (a target on this host is reached over lo) and stay unchecked otherwise.
func TestEvaluateInterfaces(t *testing.T) {
	rs, err := ParseIptablesSave(`*filter
:INPUT DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT ! -i eth+ -p tcp --dport 7000 -j DROP
-A OUTPUT -o eth0 -p tcp --dport 7001 -j REJECT
COMMIT
`, "ip")
	if err != nil {
		t.Fatal(err)
	}
	rules := rs.Rules()
	nrs, err := ParseNftJSON([]byte(`{"nftables":[{"chain":{"family":"inet","table":"t","name":"in","type":"filter","hook":"input","prio":0,"policy":"drop"}},
		{"rule":{"family":"inet","table":"t","chain":"in","handle":1,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"lo"}},{"accept":null}]}}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	nft := nrs.Rules()
	in := func(dst, dev string) Packet {
		return Packet{Direction: "in", Dst: netip.MustParseAddrPort(dst), In: dev}
	}
	out := func(dst, dev string) Packet {
		return Packet{Direction: "out", Dst: netip.MustParseAddrPort(dst), Out: dev}
	}
	for _, tc := range []struct {
		name  string
		rules []Rule
		p     Packet
		want  []string // "exact: rule" or "maybe: rule", in order
	}{
		{"lo accepted", rules, in("127.0.0.1:5432", "lo"), []string{"exact: -A INPUT -i lo -j ACCEPT"}},
		{"interface unknown: the accept cannot decide", rules, in("127.0.0.1:5432", ""), []string{"exact: -P INPUT DROP"}},
		{"another interface: the policy", rules, in("198.18.0.2:5432", "eth1"), []string{"exact: -P INPUT DROP"}},
		{"negated prefix holds", rules, in("198.18.0.2:7000", "wlan0"), []string{"exact: -A INPUT ! -i eth+ -p tcp --dport 7000 -j DROP"}},
		{"negated prefix fails", rules, in("198.18.0.2:7000", "eth3"), []string{"exact: -P INPUT DROP"}},
		{"negated prefix unknown", rules, in("198.18.0.2:7000", ""), []string{"maybe: -A INPUT ! -i eth+ -p tcp --dport 7000 -j DROP", "exact: -P INPUT DROP"}},
		{"out interface matches", rules, out("198.18.0.2:7001", "eth0"), []string{"exact: -A OUTPUT -o eth0 -p tcp --dport 7001 -j REJECT"}},
		{"out interface differs", rules, out("198.18.0.2:7001", "lo"), nil},
		{"nft iifname lo accepted", nft, in("127.0.0.1:5432", "lo"), []string{`exact: meta iifname == "lo" accept`}},
		{"nft iifname unknown", nft, in("127.0.0.1:5432", ""), []string{"exact: chain in { type filter hook input priority 0; policy drop; }"}},
	} {
		var got []string
		for _, m := range Evaluate(tc.rules, tc.p) {
			kind := "maybe"
			if m.Exact {
				kind = "exact"
			}
			got = append(got, kind+": "+m.Rule.Text)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestParseFirewallErrors(t *testing.T) {
	for _, in := range []string{
		"*filter\n-A INPUT -p tcp --dport 99999 -j DROP\n",
		"*filter\n-A INPUT -p tcp --dport\n",
		"*filter\n-A INPUT -m comment --comment \"open\n",
		"*filter\nbogus\n",
		"*filter\n-A INPUT -d 300.1.1.1 -j DROP\n",
		"*filter\n-A INPUT -p tcp --dport 90:80 -j DROP\n",
	} {
		if _, err := ParseIptablesSave(in, "ip"); err == nil {
			t.Errorf("ParseIptablesSave(%q) accepted", in)
		}
	}
	if _, err := ParseNftJSON([]byte(`{"nftables": [`), nil); err == nil {
		t.Error("truncated nft JSON accepted")
	}
}

func FuzzParseIptablesSave(f *testing.F) {
	f.Add(mustRead(f, "iptables-save.txt"))
	f.Add(mustRead(f, "iptables-save-nat.txt"))
	f.Add(mustRead(f, "iptables-save-jumps.txt"))
	f.Add("*filter\n:INPUT DROP [0:0]\n-A INPUT ! -p tcp -j ACCEPT\n")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseIptablesSave(s, "ip")
		if err != nil {
			return
		}
		checkRuleset(t, rs)
		rules := rs.Rules()
		for _, r := range rules {
			for _, pr := range r.ports {
				if pr.lo > pr.hi {
					t.Fatalf("backwards range in %q", r.Text)
				}
			}
		}
		checkEvaluate(t, rs)
	})
}

// checkEvaluate checks what Evaluate keeps for any ruleset: a chain
// reached by jump knows the hooks that reach it, all of them hooks of its
// table's base chains, and a rule reported as certainly matching has no
// condition left that Evaluate does not decide.
func checkEvaluate(t *testing.T, rs *Ruleset) {
	t.Helper()
	for _, tb := range rs.Tables {
		hooks := map[string]bool{}
		for _, c := range tb.Chains {
			hooks[c.Hook] = true
		}
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				if c.Hook == "" && r.Hooks == nil {
					t.Fatalf("rule %q of jump target %s: hooks not resolved", r.Text, c.Name)
				}
				for _, h := range r.Hooks {
					if h == "" || !hooks[h] {
						t.Fatalf("rule %q of %s: hook %q no base chain of %s has", r.Text, c.Name, h, tb.Label())
					}
				}
			}
		}
	}
	rules := rs.Rules()
	for _, dir := range []string{"in", "out"} {
		for _, m := range Evaluate(rules, pkt(dir, "198.18.0.2:80")) {
			if !m.Exact {
				continue
			}
			if !m.Rule.hookApplies(dir) {
				t.Fatalf("%s: %q of a chain no %s hook reaches", dir, m.Rule.Text, dir)
			}
			for _, c := range m.Rule.other {
				if _, ok := c.m.(tcpFlags); !ok {
					t.Fatalf("%s: %q exact with %q unchecked", dir, m.Rule.Text, c.text)
				}
			}
		}
	}
}

func FuzzParseNftJSON(f *testing.F) {
	f.Add([]byte(mustRead(f, "nft.json")))
	f.Add([]byte(mustRead(f, "nft-nat.json")))
	f.Add([]byte(mustRead(f, "nft-jumps.json")))
	f.Add([]byte(`{"nftables":[{"rule":{"family":"inet","table":"t","chain":"c","handle":1,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"range":[9,1]}}},{"drop":null}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseNftJSON(b, nil)
		if err != nil {
			return
		}
		checkRuleset(t, rs)
		rules := rs.Rules()
		for _, r := range rules {
			for _, pr := range r.ports {
				if pr.lo > pr.hi {
					t.Fatalf("backwards range in %q", r.Text)
				}
			}
		}
		checkEvaluate(t, rs)
	})
}

func FuzzParseNftText(f *testing.F) {
	f.Add(mustRead(f, "nft.txt"))
	f.Add(mustRead(f, "nft-nat.txt"))
	f.Add(mustRead(f, "nft-jumps.txt"))
	f.Fuzz(func(t *testing.T, s string) { ParseNftText(s) })
}
