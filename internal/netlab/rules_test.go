package netlab_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/internal/netlab"
)

// dialErr dials addr from h with a short timeout and returns the error.
func dialErr(t *testing.T, h *netlab.Host, addr string, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
	}
	return err
}

// listening serves (accept, close) on a fresh port of addr inside h.
func listening(t *testing.T, h *netlab.Host, addr netip.Addr) string {
	t.Helper()
	ln := h.Listen(t, "tcp", netip.AddrPortFrom(addr, 0).String())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func save(t *testing.T, h *netlab.Host, table string) string {
	t.Helper()
	return h.Run(t, "iptables-save", "-t", table)
}

// A ruleset is live once applied, lands in iptables-save exactly as
// written, and leaves nothing behind once removed: not its rules, not its
// chains, not its policy, and not a rule that was there before it.
func TestApplyRulesAndRemove(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	p := netlab.New(t).Pair()
	addr := listening(t, p.Server, p.ServerAddr)
	port := addr[strings.LastIndex(addr, ":")+1:]
	keep := p.Server.AddRule(t, "filter", "-A INPUT -p udp -m udp --dport 9 -j DROP")
	before := save(t, p.Server, "filter")

	rules := p.Server.ApplyRules(t, netlab.IPTables, `*filter
:FORWARD DROP [0:0]
:LAB-IN - [0:0]
-A INPUT -j LAB-IN
-A LAB-IN -p tcp -m comment --comment "lab: refuse the test port" -m tcp --dport `+port+` -j REJECT --reject-with icmp-port-unreachable
COMMIT
`)
	if err := dialErr(t, p.Client, addr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial through the REJECT rule: %v, want ECONNREFUSED", err)
	}
	saved := save(t, p.Server, "filter")
	for _, line := range rules.Lines("filter") {
		if !strings.Contains(saved, line+"\n") {
			t.Errorf("iptables-save does not print %q as written:\n%s", line, saved)
		}
	}
	if len(rules.Lines("filter")) != 2 || len(rules.Lines("nat")) != 0 {
		t.Errorf("Lines: filter %q, nat %q", rules.Lines("filter"), rules.Lines("nat"))
	}
	if !strings.Contains(saved, ":FORWARD DROP") {
		t.Errorf("policy not set:\n%s", saved)
	}

	rules.Remove(t)
	rules.Remove(t) // a no-op
	if err := dialErr(t, p.Client, addr, 5*time.Second); err != nil {
		t.Errorf("dial after Remove: %v", err)
	}
	if after := save(t, p.Server, "filter"); stripComments(after) != stripComments(before) {
		t.Errorf("filter table after Remove:\n%s\nwant as before:\n%s", after, before)
	}
	keep.Remove(t)
	if after := save(t, p.Server, "filter"); strings.Contains(after, "--dport 9") {
		t.Errorf("AddRule's rule still there after Remove:\n%s", after)
	}
}

// stripComments drops iptables-save's dated # lines.
func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// Rules applied in a subtest are gone when the subtest ends, while the
// host lives on for the next one.
func TestRulesRemovedWhenTestEnds(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.New(t)
	h := lab.Host("fw")
	t.Run("iptables", func(t *testing.T) {
		h.ApplyRules(t, netlab.IPTables, "*nat\n:LAB - [0:0]\n-A OUTPUT -j LAB\n-A LAB -p tcp -m tcp --dport 1 -j DNAT --to-destination 127.0.0.1:2\nCOMMIT\n")
		h.ApplyRules(t, netlab.IP6Tables, "*filter\n-I INPUT 1 -s fd00::1/128 -j DROP\nCOMMIT\n")
	})
	t.Run("nft", func(t *testing.T) {
		h.ApplyRules(t, netlab.NFTables, "table inet lab {\n chain in {\n  type filter hook input priority 0;\n  tcp dport 7 drop\n }\n}\n")
	})
	if out := save(t, h, "nat"); strings.Contains(out, "LAB") {
		t.Errorf("nat rules left after the subtest:\n%s", out)
	}
	if out := h.Run(t, "ip6tables-save", "-t", "filter"); strings.Contains(out, "fd00::1") {
		t.Errorf("ip6tables rule left after the subtest:\n%s", out)
	}
	if out := h.Run(t, "nft", "list", "tables"); strings.Contains(out, "inet lab") {
		t.Errorf("nft table left after the subtest:\n%s", out)
	}
}

// A refused ruleset fails with the line the tool refused, quoted, and the
// tool's own message; nothing of it is loaded.
func TestApplyRulesErrorQuotesTheRule(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	h := netlab.New(t).Host("fw")
	for _, tc := range []struct {
		name  string
		tool  netlab.RuleTool
		rules string
		line  int
		quote string
		says  string
	}{
		{"unknown option", netlab.IPTables, "*filter\n-A INPUT -p tcp -m tcp --dport 80 -j DROP\n-A INPUT -p tcp --dprt 80 -j DROP\nCOMMIT\n",
			3, "-A INPUT -p tcp --dprt 80 -j DROP", `unknown option "--dprt"`},
		{"unknown chain", netlab.IPTables, "*filter\n-A NOPE -j DROP\nCOMMIT\n",
			2, "-A NOPE -j DROP", "No chain/target/match"},
		{"v6 address for iptables", netlab.IPTables, "*filter\n-A INPUT -d fd00::1 -j DROP\nCOMMIT\n",
			2, "-A INPUT -d fd00::1 -j DROP", "fd00::1"},
		{"nft syntax", netlab.NFTables, "table inet x {\n chain c {\n  tcp dprt 80 drop\n }\n}\n",
			3, "  tcp dprt 80 drop", "syntax error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := netlab.TryApplyRules(h, tc.tool, tc.rules)
			var re *netlab.RuleError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RuleError", err)
			}
			if re.Line != tc.line || re.Rule != tc.quote || !strings.Contains(re.Output, tc.says) {
				t.Errorf("RuleError line %d %q output %q; want line %d %q and output with %q", re.Line, re.Rule, re.Output, tc.line, tc.quote, tc.says)
			}
			msg := err.Error()
			for _, want := range []string{h.Name(), string(tc.tool), tc.quote, tc.says} {
				if !strings.Contains(msg, want) {
					t.Errorf("message does not say %q:\n%s", want, msg)
				}
			}
		})
	}
	if out := save(t, h, "filter"); strings.Contains(out, "--dport 80") {
		t.Errorf("a refused ruleset left a rule behind:\n%s", out)
	}
	if err := netlab.TryApplyRules(h, netlab.IPTables, "*filter\n-F INPUT\nCOMMIT\n"); err == nil || !strings.Contains(err.Error(), "-F INPUT") {
		t.Errorf("a ruleset that cannot be taken back out: %v, want an error quoting -F INPUT", err)
	}
}

func TestIptablesBackend(t *testing.T) {
	netlab.Require(t)
	b, err := netlab.IptablesBackend()
	if err != nil || (b != "nf_tables" && b != "legacy") {
		t.Fatalf("IptablesBackend() = %q, %v", b, err)
	}
	t.Logf("iptables backend: %s", b)
}
