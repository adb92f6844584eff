package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// fakeAgents answers for each address as the agent on its host would.
type fakeAgents map[netip.Addr]func(ctx context.Context) (HostEvidence, error)

func (f fakeAgents) Evidence(ctx context.Context, ap netip.AddrPort) (HostEvidence, error) {
	return f[ap.Addr()](ctx)
}

// agentView is what an agent on host f answers about dst: its evidence,
// narrowed (and its rules walked) for a client it does not know.
func agentView(t *testing.T, name string, f fakeHost, dst netip.AddrPort) HostEvidence {
	t.Helper()
	ev := Gather(t.Context(), f, f).Narrow(netip.AddrPort{}, dst)
	ev.Host = name
	return ev
}

// resolved stands in for the dns check: the name has these addresses.
func resolved(addrs ...netip.Addr) Check {
	return CheckFunc{CheckName: "dns", Fn: func(_ context.Context, s *State) CheckResult {
		s.Addrs, s.LookupOK = addrs, true
		return CheckResult{Status: Pass}
	}}
}

// Each failing address gets its own host's evidence; an agent that does not
// answer, refuses us or runs on another host costs only its own address,
// and says so with what to do.
func TestRemoteEvidencePerAddress(t *testing.T) {
	a, b, c, d := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.4"), netip.MustParseAddr("198.18.0.5")
	reject := iptablesRules(t, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 5432 -j REJECT --reject-with tcp-reset\nCOMMIT\n").Rules()
	answer := func(ev HostEvidence) func(context.Context) (HostEvidence, error) {
		return func(context.Context) (HostEvidence, error) { return ev, nil }
	}
	agents := fakeAgents{
		a: answer(agentView(t, "agent a", fakeHost{addrs: []netip.Prefix{netip.PrefixFrom(a, 24)},
			socks: []sockets.Socket{listener("127.0.0.1:5432", "sleeping", 0, 128)}}, netip.AddrPortFrom(a, 5432))),
		b: func(ctx context.Context) (HostEvidence, error) { <-ctx.Done(); return HostEvidence{}, ctx.Err() },
		c: func(context.Context) (HostEvidence, error) {
			return HostEvidence{}, &AgentError{Name: "c", URL: "http://198.18.0.4:7070", Failure: AgentUnauthorized, Err: errors.New("HTTP 401")}
		},
		d: answer(HostEvidence{Host: "agent e", Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.6/24")}, Firewall: true,
			Rules: reject, Listening: []sockets.Socket{}}),
	}
	self := fakeHost{addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.9/24")}}
	timeout := 300 * time.Millisecond
	opt := Options{Timeout: timeout, Dial: dialClass(probe.Refused), Sockets: self, Firewall: self, Remote: agents, Probes: 1,
		Ladder: []Stage{{resolved(a, b, c, d)}, {TCPCheck, HostCheck}, {SocketsCheck, FirewallCheck}}}
	start := time.Now()
	r := Run(context.Background(), endpoint.Endpoint{Host: "db.reach.test", Port: 5432}, opt)
	if took := time.Since(start); took > 2*timeout+time.Second {
		t.Errorf("took %v: the silent agent was not bounded by the timeout %v", took, timeout)
	}
	var text strings.Builder
	r.WriteText(&text, TextOptions{Width: 400}) // wide: no issue wraps

	var loop *Finding
	for i, f := range r.Findings {
		if f.Cause == LoopbackOnly {
			loop = &r.Findings[i]
		}
	}
	if loop == nil || loop.Confidence != Confirmed || loop.Addr != "198.18.0.2:5432" || !strings.Contains(loop.Evidence, "reported by agent a") {
		t.Errorf("want loopback-only confirmed for 198.18.0.2:5432, reported by agent a; got %+v\n%s", loop, text.String())
	}
	if r.Cause != LoopbackOnly || !strings.Contains(r.Verdict, "198.18.0.2:5432: Server bound to loopback only") {
		t.Errorf("cause %s, verdict %q: want loopback-only, naming its address", r.Cause, r.Verdict)
	}
	if !strings.Contains(text.String(), "198.18.0.2:5432: Server bound to loopback only [loopback-only, confirmed]") {
		t.Errorf("the table does not name the address of the finding:\n%s", text.String())
	}
	want := []struct {
		from    string
		failure AgentFailure
		fix     string
	}{
		{"agent a", "", ""},
		{"", AgentUnreachable, "reach agent runs on 198.18.0.3"},
		{"agent c (http://198.18.0.4:7070)", AgentUnauthorized, "--token-file"},
		{"agent e", AgentWrongHost, "--hub"},
	}
	for i, w := range want {
		ev := r.Addresses[i].Evidence
		if ev == nil || ev.From != w.from || ev.Failure != w.failure || !strings.Contains(ev.Fix, w.fix) {
			t.Errorf("address %s: evidence %+v, want from %q failure %q fix with %q", r.Addresses[i].Addr, ev, w.from, w.failure, w.fix)
		}
	}
	// The other host's reject rule is not taken for d's.
	for _, f := range r.Findings {
		if f.Confidence == Confirmed && f.Addr != "198.18.0.2:5432" {
			t.Errorf("confirmed finding %+v from evidence that is not about its address", f)
		}
	}
	next := strings.Join(r.Next, "\n")
	for _, s := range []string{"gave no evidence for 198.18.0.3 (unreachable", "agent c (http://198.18.0.4:7070) gave no evidence for 198.18.0.4 (unauthorized"} {
		if !strings.Contains(next, s) {
			t.Errorf("next steps lack %q:\n%s", s, next)
		}
	}
	for _, c := range r.Checks {
		// An agent sends only what concerns the connection: the detail
		// does not pass it off as all it has.
		if c.Name == "host" && (c.Status != Error || !strings.Contains(c.Detail, "agent a answered for 198.18.0.2: 1 listening socket on port 5432 or look-alike ports, 0 firewall rules that match")) {
			t.Errorf("host check %+v: want error, with agent a's answer as what concerns port 5432", c)
		}
	}
	b2, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b2), `"evidence":{"from":"agent c (http://198.18.0.4:7070)","failure":"unauthorized","error":"HTTP 401","fix":`) {
		t.Errorf("JSON lacks the agent's failure per address:\n%s", b2)
	}
}
