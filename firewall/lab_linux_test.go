package firewall_test

import (
	"context"
	"testing"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/internal/netlab"
)

// Commands reads every table of a namespace's firewall, nat included, from
// iptables-save and nft; iptables-nft's tables come from iptables-save only.
func TestCommandsReadEveryTable(t *testing.T) {
	h := netlab.New(t).Host("fw")
	h.ApplyRules(t, netlab.IPTables, `*filter
-A INPUT -p tcp -m tcp --dport 7707 -j DROP
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80
COMMIT
`)
	h.ApplyRules(t, netlab.NFTables, `table inet kp {
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8443 redirect to :443 comment "kp"
	}
}`)
	var rs *firewall.Ruleset
	err := h.Do(func() (err error) {
		rs, err = firewall.Commands{}.Read(context.Background())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	nat := rs.Table("nat")
	if nat == nil || nat.Source != firewall.Iptables || nat.Chain("DOCKER") == nil {
		t.Fatalf("no iptables nat table with DOCKER in %+v", rs.Tables)
	}
	if r := nat.Chain("PREROUTING").Rules; len(r) != 1 || r[0].Verdict != "jump" || r[0].JumpTo != "DOCKER" {
		t.Errorf("PREROUTING rules %+v", r)
	}
	if r := nat.Chain("DOCKER").Rules; len(r) != 1 || r[0].Verdict != "dnat" || r[0].To != "198.19.0.2:80" {
		t.Errorf("DOCKER rules %+v", r)
	}
	if rs.Table("filter") == nil {
		t.Error("no iptables filter table")
	}
	kp := rs.Table("inet kp")
	if kp == nil {
		t.Fatalf("no nft table inet kp in %+v", rs.Tables)
	}
	if r := kp.Chain("nat-prerouting").Rules; len(r) != 1 || r[0].Verdict != "redirect" || r[0].To != "443" ||
		r[0].Comment != "kp" || r[0].Text != `tcp dport 8443 redirect to :443 comment "kp"` {
		t.Errorf("nat-prerouting rules %+v", r)
	}
	for _, tb := range rs.Tables {
		if tb.Source == firewall.Nftables && (tb.Family == "ip" || tb.Family == "ip6") {
			t.Errorf("table %s read twice: iptables-save shows it", tb.Label())
		}
	}
}
