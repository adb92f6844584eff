package doctor

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/firewall"
)

// TestFirewallCountsRulesRead: the detail counts the rules this host read
// once, also when the target is this host (its rules are evaluated going
// out and coming in), and does not call an agent's matching rules all it
// read.
func TestFirewallCountsRulesRead(t *testing.T) {
	rs, err := firewall.ParseIptablesSave(`*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 25 -j REJECT
COMMIT
`, "ip")
	if err != nil {
		t.Fatal(err)
	}
	here := &HostEvidence{Host: "this host", Firewall: true, Rules: rs.Rules()}
	n := len(here.Rules)
	agent := &HostEvidence{Host: "agent db (http://198.18.0.2:7070)", Firewall: true}
	for _, tc := range []struct {
		name   string
		target *HostEvidence
		want   string
	}{
		{"this host", here, "(" + count(n, "rule") + " read)"},
		{"agent", agent, "(" + count(n, "rule") + " read on this host; agent db (http://198.18.0.2:7070) read its own and sent none that match)"},
		{"unseen", nil, "(" + count(n, "rule") + " read on this host; the target's firewall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &State{Target: endpoint.Endpoint{Host: "198.18.0.2", Port: 8080},
				Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.2")}, Client: here, Hosts: []*HostEvidence{tc.target}}
			res := checkFirewall(context.Background(), s)
			if res.Status != Pass || !strings.Contains(res.Detail, tc.want) {
				t.Errorf("%s: %s; want it to say %q", res.Status, res.Detail, tc.want)
			}
		})
	}
}
