package doctor

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// fixtureRules are the firewall package's iptables-save fixture.
func fixtureRules(t *testing.T) []firewall.Rule {
	t.Helper()
	b, err := os.ReadFile("../firewall/testdata/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	return iptablesRules(t, string(b)).Rules()
}

// Narrowed evidence survives JSON and the asker's evaluation finds the same
// deciding rule, while unrelated sockets and rules stay on the host.
func TestNarrowForRemote(t *testing.T) {
	rules := fixtureRules(t)
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
	var got string
	for _, h := range firewall.Evaluate(back.Rules, firewall.Packet{Direction: "in", Src: src, Dst: dst}) {
		got += h.Rule.Text + map[bool]string{true: " |exact", false: ""}[h.Exact] + "\n"
	}
	if got != want {
		t.Errorf("after the wire, evaluation gives\n%s\nwant\n%s", got, want)
	}
	if len(back.Rules) >= len(rules) {
		t.Errorf("%d of %d rules sent, want only the deciding ones", len(back.Rules), len(rules))
	}
}

func TestExplainRemote(t *testing.T) {
	rules := fixtureRules(t)
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

// Who was asked is typed: the report names it and picks the fix from the
// fields, never from the message.
func TestAgentErrorWho(t *testing.T) {
	ap := netip.MustParseAddrPort("198.18.0.2:5432")
	for _, tc := range []struct {
		err       AgentError
		who, fix  string
		fixLacks  string
		errPrefix string
	}{
		{AgentError{Name: "db", URL: "https://198.18.0.2:7070", Failure: AgentUnreachable},
			"agent db (https://198.18.0.2:7070)", "reach agent runs on 198.18.0.2", "", "agent db (https://198.18.0.2:7070): unreachable"},
		{AgentError{URL: "http://198.18.0.2:7070", Failure: AgentUnreachable},
			"agent http://198.18.0.2:7070", "(reach check 198.18.0.2:7070)", "hub runs", "agent http://198.18.0.2:7070: unreachable"},
		{AgentError{Hub: true, URL: "http://198.18.0.1:9190", Failure: AgentUnreachable},
			"hub http://198.18.0.1:9190", "check that the hub runs and that this host reaches it (reach check 198.18.0.1:9190)", "reach agent runs", "hub http://198.18.0.1:9190: unreachable"},
		{AgentError{Hub: true, URL: "http://198.18.0.1:9190", Failure: AgentNone},
			"hub http://198.18.0.1:9190", "--advertise", "", "hub http://198.18.0.1:9190: no-agent"},
		{AgentError{Answered: "agent e (http://198.18.0.6:7070)", Failure: AgentWrongHost},
			"agent e (http://198.18.0.6:7070)", "use --hub", "", "agent e (http://198.18.0.6:7070): wrong-host"},
		{AgentError{Failure: AgentUnreachable}, "", "reach agent runs on 198.18.0.2", "(reach check", "the agent: unreachable"},
		{AgentError{Name: "db", URL: "http://198.18.0.2:7070", Failure: AgentSlow},
			"agent db (http://198.18.0.2:7070)", "the agent runs and was reached, but did not answer within the check's timeout", "reach agent runs on", "agent db (http://198.18.0.2:7070): slow"},
		{AgentError{Hub: true, URL: "http://198.18.0.1:9190", Failure: AgentSlow},
			"hub http://198.18.0.1:9190", "the hub runs and was reached, but did not answer", "the agent runs", "hub http://198.18.0.1:9190: slow"},
	} {
		tc.err.Err = errors.New("boom")
		if got := tc.err.Who(); got != tc.who {
			t.Errorf("%+v: Who %q, want %q", tc.err, got, tc.who)
		}
		fix := tc.err.fix(ap)
		if !strings.Contains(fix, tc.fix) || (tc.fixLacks != "" && strings.Contains(fix, tc.fixLacks)) {
			t.Errorf("%+v: fix %q, want %q without %q", tc.err, fix, tc.fix, tc.fixLacks)
		}
		if got := tc.err.Error(); !strings.HasPrefix(got, tc.errPrefix) {
			t.Errorf("%+v: Error %q, want it to start with %q", tc.err, got, tc.errPrefix)
		}
	}
}
