package doctor

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// Narrowed evidence survives JSON and the asker's evaluation finds the same
// deciding rule, while unrelated sockets and rules stay on the host.
func TestNarrowForRemote(t *testing.T) {
	rules, err := ParseIptablesSave(mustRead(t, "iptables-save.txt"), "ip")
	if err != nil {
		t.Fatal(err)
	}
	listen := func(ap string) sockets.Socket {
		return sockets.Socket{Proto: "tcp", Local: netip.MustParseAddrPort(ap), State: sockets.StateListen}
	}
	ev := HostEvidence{Host: "db", Firewall: true, Rules: rules, Listening: []sockets.Socket{
		listen("127.0.0.1:8050"), listen("0.0.0.0:8051"), listen("0.0.0.0:22"), listen("0.0.0.0:9999"),
	}}
	src, dst := netip.MustParseAddrPort("198.18.0.5:40000"), netip.MustParseAddrPort("198.18.0.2:8050")
	n := ev.Narrow(src, dst)

	if len(n.Listening) != 2 || n.Listening[0].Local.Port() != 8050 || n.Listening[1].Local.Port() != 8051 {
		t.Errorf("listening %v, want the ones on 8050 and the nearby 8051 only", n.Listening)
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	var back HostEvidence
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	want := "-A INPUT -d 198.18.0.2/32 -p tcp -m multiport --dports 80,8000:8100 -j REJECT --reject-with tcp-reset |exact\n"
	if got := describe(Evaluate(back.Rules, Packet{Direction: "in", Src: src, Dst: dst})); got != want {
		t.Errorf("after the wire, evaluation gives\n%s\nwant\n%s", got, want)
	}
	if len(back.Rules) >= len(rules) {
		t.Errorf("%d of %d rules sent, want only the deciding ones", len(back.Rules), len(rules))
	}
}

func TestExplainRemote(t *testing.T) {
	rules, err := ParseIptablesSave(mustRead(t, "iptables-save.txt"), "ip")
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("198.18.0.5:0")
	lo := sockets.Socket{Proto: "tcp", Local: netip.MustParseAddrPort("127.0.0.1:6000"), State: sockets.StateListen}
	any := sockets.Socket{Proto: "tcp", Local: netip.MustParseAddrPort("0.0.0.0:7707"), State: sockets.StateListen}
	ev := HostEvidence{Host: "agent db", Rules: rules, Listening: []sockets.Socket{lo, any}}
	for _, tc := range []struct {
		dst   string
		class probe.Class
		want  Cause
	}{
		{"198.18.0.2:6000", probe.Refused, LoopbackOnly},
		{"198.18.0.2:7707", probe.Timeout, FirewallDrop},   // -A INPUT --dport 7707 -j DROP
		{"198.18.0.2:8050", probe.Refused, NotListening},   // nothing on 8050 (the reject rule is second)
		{"198.18.0.2:8050", probe.Refused, FirewallReject}, // and the rule rejects with tcp-reset
	} {
		n := ev.Narrow(src, netip.MustParseAddrPort(tc.dst))
		_, fs := Explain(n, src, netip.MustParseAddrPort(tc.dst), tc.class)
		found := false
		for _, f := range fs {
			found = found || f.Cause == tc.want
		}
		if !found {
			t.Errorf("%s %s: findings %+v, want %s", tc.dst, tc.class, fs, tc.want)
		}
	}
}
