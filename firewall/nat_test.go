package firewall

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// outline renders a ruleset's shape: each chain with its hook, type,
// priority and policy, then its rules' targets and comments.
func outline(rs *Ruleset) []string {
	var out []string
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			line := t.Source + " " + t.Label() + "/" + c.Name
			if c.Hook != "" {
				line += fmt.Sprintf(" hook %s %s %d policy %s", c.Hook, c.Type, c.Priority, c.Policy)
			}
			out = append(out, line)
			for _, r := range c.Rules {
				rl := "  " + r.Verdict
				if r.JumpTo != "" {
					rl += " " + r.JumpTo
				}
				if r.To != "" {
					rl += " to " + r.To
				}
				if r.Comment != "" {
					rl += " #" + r.Comment
				}
				if len(r.other) > 0 {
					rl += " if " + strings.Join(texts(r.other), ", ")
				}
				out = append(out, rl)
			}
		}
	}
	return out
}

// Every table is read, nat included: chains with their hooks and
// priorities, jumps to the chains they name, returns, and translations
// with where they lead, as Docker's rules write them.
func TestIptablesNatTable(t *testing.T) {
	rs, err := ParseIptablesSave(mustRead(t, "iptables-save-nat.txt"), "ip")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables filter/INPUT hook input filter 0 policy accept",
		"  drop",
		"iptables filter/FORWARD hook forward filter 0 policy drop",
		"iptables filter/OUTPUT hook output filter 0 policy accept",
		"iptables nat/PREROUTING hook prerouting nat -100 policy accept",
		"  jump DOCKER if --dst-type LOCAL",
		"iptables nat/INPUT hook input nat 100 policy accept",
		"iptables nat/OUTPUT hook output nat -100 policy accept",
		"  jump DOCKER if ! -d 127.0.0.0/8, --dst-type LOCAL",
		"iptables nat/POSTROUTING hook postrouting nat 100 policy accept",
		"  masquerade",
		"iptables nat/DOCKER",
		"  return",
		"  dnat to 198.19.0.2:80 #web published",
		"  redirect to 443",
	}
	if got := outline(rs); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	nat := rs.Table("nat")
	if nat == nil || nat.Chain("DOCKER") == nil || nat.Chain("DOCKER").Rules[1].ifaces[0].text != "! -i docker0" {
		t.Fatalf("nat table: %+v", nat)
	}
	// Only accept, drop and reject decide: the nat table changes nothing
	// Evaluate says (the SYN to 8080 meets no filtering rule).
	rules := rs.Rules()
	if got := describe(Evaluate(rules, pkt("in", "198.18.0.2:8080"))); got != "" {
		t.Errorf("8080: %s", got)
	}
	if got := describe(Evaluate(rules, pkt("in", "198.18.0.2:7707"))); got != "-A INPUT -p tcp -m tcp --dport 7707 -j DROP |exact\n" {
		t.Errorf("7707: %s", got)
	}
}

// A target that names no chain of the table is a target extension.
func TestIptablesTargets(t *testing.T) {
	rs, err := ParseIptablesSave(`*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:mark - [0:0]
-A PREROUTING -p tcp -m string --algo bm --to 64 --string x -j LOG --log-prefix "x: "
-A PREROUTING -g mark
-A mark -j MARK --set-xmark 0x1/0xffffffff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 198.18.0.2/32 -p tcp -j DNAT --to-destination [fd00::2]:80
-A POSTROUTING -j SNAT --to-source 198.18.0.9
COMMIT
`, "ip")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables mangle/PREROUTING hook prerouting filter -150 policy accept",
		"  log if --algo bm, --to 64, --string x",
		"  goto mark",
		"iptables mangle/OUTPUT hook output route -150 policy accept",
		"iptables mangle/mark",
		"  mark",
		"iptables nat/PREROUTING hook prerouting nat -100 policy accept",
		"  dnat to [fd00::2]:80",
		"iptables nat/POSTROUTING hook postrouting nat 100 policy accept",
		"  snat to 198.18.0.9",
	}
	if got := outline(rs); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// nft's nat chains: native jumps, gotos, verdict maps, dnat, snat,
// masquerade and redirect, with comments; and the
// nat table iptables-nft writes, whose targets nft -j shows without options.
func TestNftNatTable(t *testing.T) {
	rs := mustParseNft(t, "nft-nat.json", "nft-nat.txt")
	want := []string{
		"nftables ip nat/PREROUTING hook prerouting nat -100 policy accept",
		"  jump DOCKER if xt match addrtype",
		"nftables ip nat/INPUT hook input nat 100 policy accept",
		"nftables ip nat/OUTPUT hook output nat -100 policy accept",
		"  jump DOCKER if ip daddr != 127.0.0.0/8, xt match addrtype",
		"nftables ip nat/POSTROUTING hook postrouting nat 100 policy accept",
		"  masquerade",
		"nftables ip nat/DOCKER",
		"  return",
		"  dnat if xt match comment",
		"  redirect",
		"nftables ip filter/INPUT hook input filter 0 policy accept",
		"  drop",
		"nftables ip filter/FORWARD hook forward filter 0 policy drop",
		"nftables ip filter/OUTPUT hook output filter 0 policy accept",
		"nftables inet kp/nat-prerouting hook prerouting nat -100 policy accept",
		"  jump services",
		"nftables inet kp/nat-output hook output nat -100 policy accept",
		`  jump services if ip daddr != 127.0.0.0/8, fib daddr type == "local"`,
		"nftables inet kp/services",
		"  goto service-web #default/web:http",
		"  redirect to 443",
		"nftables inet kp/service-web",
		"  vmap",
		"nftables inet kp/endpoint-a",
		"  dnat to 198.19.0.2:80",
		"nftables inet kp/endpoint-b",
		"  dnat to 198.19.0.3:80",
		"nftables inet kp/filter-input hook input filter 0 policy accept",
		"  reject #default/db has no endpoints",
		"nftables inet kp/nat-postrouting hook postrouting nat 100 policy accept",
		"  masquerade",
		"  snat to 198.18.5.1",
	}
	if got := outline(rs); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	kp := rs.Table("inet kp")
	if kp == nil {
		t.Fatal("no table inet kp")
	}
	if r := kp.Chain("endpoint-a").Rules[0]; r.Text != "meta l4proto tcp dnat ip to 198.19.0.2:80" {
		t.Errorf("dnat rule quoted as %q", r.Text)
	}
	// The kube-proxy style REJECT decides a SYN to the service address.
	got := describe(Evaluate(rs.Rules(), pkt("in", "198.18.5.11:80")))
	if want := `ip daddr 198.18.5.11 tcp dport 80 reject with tcp reset comment "default/db has no endpoints" |exact` + "\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
