package doctor

import (
	"net/netip"
	"os"
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

func pkt(dir, dst string) Packet {
	return Packet{Direction: dir, Src: netip.MustParseAddrPort("198.18.0.5:40000"), Dst: netip.MustParseAddrPort(dst)}
}

// describe renders matches as "text|exact" lines for comparison.
func describe(ms []Match) string {
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
	rules, err := ParseIptablesSave(mustRead(t, "iptables-save.txt"), "ip")
	if err != nil {
		t.Fatal(err)
	}
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
	rules, err := ParseNftJSON([]byte(mustRead(t, "nft.json")), ParseNftText(mustRead(t, "nft.txt")))
	if err != nil {
		t.Fatal(err)
	}
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
		var exact []Match
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
	f.Add("*filter\n:INPUT DROP [0:0]\n-A INPUT ! -p tcp -j ACCEPT\n")
	f.Fuzz(func(t *testing.T, s string) {
		rules, err := ParseIptablesSave(s, "ip")
		if err != nil {
			return
		}
		for _, r := range rules {
			for _, pr := range r.ports {
				if pr.lo > pr.hi {
					t.Fatalf("backwards range in %q", r.Text)
				}
			}
		}
		Evaluate(rules, pkt("in", "198.18.0.2:80"))
	})
}

func FuzzParseNftJSON(f *testing.F) {
	f.Add([]byte(mustRead(f, "nft.json")))
	f.Add([]byte(`{"nftables":[{"rule":{"family":"inet","table":"t","chain":"c","handle":1,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"range":[9,1]}}},{"drop":null}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rules, err := ParseNftJSON(b, nil)
		if err != nil {
			return
		}
		for _, r := range rules {
			for _, pr := range r.ports {
				if pr.lo > pr.hi {
					t.Fatalf("backwards range in %q", r.Text)
				}
			}
		}
		Evaluate(rules, pkt("in", "198.18.0.2:80"))
	})
}

func FuzzParseNftText(f *testing.F) {
	f.Add(mustRead(f, "nft.txt"))
	f.Fuzz(func(t *testing.T, s string) { ParseNftText(s) })
}
