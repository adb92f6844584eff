package firewall

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	ap       = netip.MustParseAddrPort
	client   = netip.MustParseAddr("198.18.0.1") // a host on the link
	podCIDR  = netip.MustParsePrefix("198.19.1.0/24")
	hostOnly = []netip.Prefix{netip.MustParsePrefix("198.18.0.2/32")}
)

// labHost is the Docker host or Kubernetes node of the fixtures: 198.18.0.2
// on eth0, docker0 at 198.19.0.1, cni0 at 198.19.1.1, ClusterIPs routed
// by uplink.
var labHost = Host{
	LocalAddrs: append(slices.Clone(hostOnly), netip.MustParsePrefix("198.19.0.1/32"), netip.MustParsePrefix("198.19.1.1/32")),
	Route: func(a netip.Addr) string {
		switch {
		case netip.MustParsePrefix("198.19.0.0/24").Contains(a):
			return "docker0"
		case podCIDR.Contains(a):
			return "cni0"
		case netip.MustParsePrefix("198.19.2.0/24").Contains(a):
			return "uplink"
		}
		return "eth0"
	},
}

func mustParseIpt(t testing.TB, text, family string) *Ruleset {
	t.Helper()
	rs, err := ParseIptablesSave(text, family)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// line renders an outcome for comparison: verdict, destination (and the
// range's end), whether local, probability, the translating chain, the
// deciding chain, the comment, and the assumptions.
func line(o Outcome) string {
	s := fmt.Sprintf("%s %v", o.Verdict, o.Dst)
	if o.LastAddr.IsValid() || o.LastPort != 0 {
		s += fmt.Sprintf(" to %v:%d", o.LastAddr, o.LastPort)
	}
	if o.Local {
		s += " local"
	}
	s += fmt.Sprintf(" p=%.3f", o.Probability)
	if o.Translation != nil {
		s += " via " + o.Translation.Chain
	}
	if o.Decider != nil {
		s += " by " + o.Decider.Chain
	}
	if o.Comment != "" {
		s += " #" + o.Comment
	}
	for _, a := range o.Assumed {
		if a.Held {
			s += " | if " + strings.Join(a.Unchecked, ", ")
		} else {
			s += " | unless " + strings.Join(a.Unchecked, ", ")
		}
	}
	return s
}

func lines(p *Path) []string {
	var out []string
	for _, o := range p.Outcomes {
		out = append(out, line(o))
	}
	return out
}

// checkPath checks what every path keeps: probabilities in (0, 1] that
// add up to 1 when each undecided condition counts as a coin toss (both
// ways of it carry the chance the path had), problems only with unknown
// outcomes, and the may-match list filled exactly when outcomes assume
// something of a rule.
func checkPath(t testing.TB, p *Path) {
	t.Helper()
	sum := 0.0
	assumes, unknowns := false, false
	for _, o := range p.Outcomes {
		if !(o.Probability > 0 && o.Probability <= 1+1e-9) {
			t.Fatalf("outcome %s: probability %v", line(o), o.Probability)
		}
		sum += o.Probability * math.Pow(0.5, float64(len(o.Assumed)))
		for _, a := range o.Assumed {
			assumes = assumes || a.Rule != nil
		}
		unknowns = unknowns || o.Verdict == "unknown"
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Fatalf("outcomes add up to %v:\n%s", sum, strings.Join(lines(p), "\n"))
	}
	if len(p.Problems) > 0 && !unknowns {
		t.Fatalf("problems %v without an unknown outcome", p.Problems)
	}
	if assumes != (len(p.MayMatch) > 0) {
		t.Fatalf("outcomes assume %v, may match %v", assumes, p.MayMatch)
	}
}

// Docker's own rules (iptables-save of a lab host running Docker 28's
// rules, a container publishing 8080:80 and one publishing
// 127.0.0.1:5432:5432), kube-proxy's (iptables and nftables modes), and
// Docker's nftables backend, walked from the host itself and from a client
// elsewhere.
func TestWalk(t *testing.T) {
	docker := mustParseIpt(t, mustRead(t, "iptables-save-docker.txt"), "ip")
	kube := mustParseIpt(t, mustRead(t, "iptables-save-kube.txt"), "ip")
	nkube := mustParseNft(t, "nft-kube.json", "nft-kube.txt")
	ndocker := mustParseNft(t, "nft-docker.json", "nft-docker.txt")
	fromHost := func(dst string) Conn { return Conn{Local: true, Dst: ap(dst)} }
	fromClient := func(dst string) Conn { return Conn{Src: client, In: "eth0", Dst: ap(dst)} }
	noRoute := labHost
	noRoute.Route = nil
	for _, tc := range []struct {
		name  string
		rs    *Ruleset
		c     Conn
		h     Host
		want  []string
		hook  string
		steps []string // of the first outcome, when given
	}{
		{"docker: the host to its published port", docker, fromHost("198.18.0.2:8080"), labHost,
			[]string{"accept 198.19.0.2:80 p=1.000 via DOCKER"}, "output",
			[]string{"output nat/OUTPUT: jump DOCKER", "output nat/DOCKER: dnat 198.19.0.2:80"}},
		{"docker: a client to the published port, forwarded and accepted", docker, fromClient("198.18.0.2:8080"), labHost,
			[]string{"accept 198.19.0.2:80 p=1.000 via DOCKER"}, "prerouting",
			[]string{"prerouting nat/PREROUTING: jump DOCKER", "prerouting nat/DOCKER: dnat 198.19.0.2:80",
				"forward filter/FORWARD: jump DOCKER-USER", "forward filter/FORWARD: jump DOCKER-FORWARD",
				"forward filter/DOCKER-FORWARD: jump DOCKER-CT", "forward filter/DOCKER-FORWARD: jump DOCKER-ISOLATION-STAGE-1",
				"forward filter/DOCKER-FORWARD: jump DOCKER-BRIDGE", "forward filter/DOCKER-BRIDGE: jump DOCKER",
				"forward filter/DOCKER: accept"}},
		{"docker: a client on an interface the walk was not told", docker, Conn{Src: client, Dst: ap("198.18.0.2:8080")}, labHost,
			[]string{
				"accept 198.18.0.2:8080 local p=1.000 | if -i docker0",
				"accept 198.19.0.2:80 p=1.000 via DOCKER | unless -i docker0",
			}, "prerouting", nil},
		{"docker: a container to the host's published port: docker-proxy's", docker,
			Conn{Src: netip.MustParseAddr("198.19.0.3"), In: "docker0", Dst: ap("198.18.0.2:8080")}, labHost,
			[]string{"accept 198.18.0.2:8080 local p=1.000"}, "prerouting", nil},
		{"docker: the host to the port published on 127.0.0.1: docker-proxy's", docker, fromHost("127.0.0.1:5432"), labHost,
			[]string{"accept 127.0.0.1:5432 local p=1.000"}, "output", nil},
		{"docker: a client to the port published on 127.0.0.1 only", docker, fromClient("198.18.0.2:5432"), labHost,
			[]string{"accept 198.18.0.2:5432 local p=1.000"}, "prerouting", nil},
		{"docker: a client straight to a container", docker, fromClient("198.19.0.2:80"), labHost,
			[]string{"drop 198.19.0.2:80 p=1.000 by PREROUTING"}, "prerouting", nil},
		{"docker: the host's addresses and routes unknown: every way, each with what it assumes", docker,
			fromClient("198.18.0.2:8080"), Host{},
			[]string{
				"accept 198.19.0.2:80 local p=1.000 via DOCKER | if --dst-type LOCAL | if 198.19.0.2 is an address of this host",
				"accept 198.19.0.2:80 p=1.000 via DOCKER | if --dst-type LOCAL | unless 198.19.0.2 is an address of this host | if -o docker0",
				"drop 198.19.0.2:80 p=1.000 via DOCKER by FORWARD | if --dst-type LOCAL | unless 198.19.0.2 is an address of this host | unless -o docker0",
				"drop 198.18.0.2:8080 p=1.000 by DOCKER | unless --dst-type LOCAL | if -o docker0",
				"drop 198.18.0.2:8080 p=1.000 by FORWARD | unless --dst-type LOCAL | unless -o docker0",
			}, "prerouting", nil},

		{"kube: the node to a ClusterIP, split three ways", kube, fromHost("198.19.2.10:80"), labHost,
			[]string{
				"accept 198.19.1.2:8080 p=0.333 via KUBE-SEP-JCWIK3PO2NYV27FM #default/web:http",
				"accept 198.19.1.3:8080 p=0.333 via KUBE-SEP-ESG6OKDJYR56WYBF #default/web:http",
				"accept 198.19.1.4:8080 p=0.333 via KUBE-SEP-3Q3X35PLQVUZRL6Y #default/web:http",
			}, "output", nil},
		{"kube: a client to a NodePort", kube, fromClient("198.18.0.2:30080"), labHost,
			[]string{
				"accept 198.19.1.2:8080 p=0.333 via KUBE-SEP-JCWIK3PO2NYV27FM #default/web:http",
				"accept 198.19.1.3:8080 p=0.333 via KUBE-SEP-ESG6OKDJYR56WYBF #default/web:http",
				"accept 198.19.1.4:8080 p=0.333 via KUBE-SEP-3Q3X35PLQVUZRL6Y #default/web:http",
			}, "prerouting",
			[]string{"prerouting nat/PREROUTING: jump KUBE-SERVICES", "prerouting nat/KUBE-SERVICES: jump KUBE-NODEPORTS",
				"prerouting nat/KUBE-NODEPORTS: jump KUBE-EXT-CDGGSHYLG3RE2FKL", "prerouting nat/KUBE-EXT-CDGGSHYLG3RE2FKL: jump KUBE-MARK-MASQ",
				"prerouting nat/KUBE-MARK-MASQ: mark 0x4000", "prerouting nat/KUBE-EXT-CDGGSHYLG3RE2FKL: jump KUBE-SVC-CDGGSHYLG3RE2FKL",
				"prerouting nat/KUBE-SVC-CDGGSHYLG3RE2FKL: jump KUBE-SEP-JCWIK3PO2NYV27FM (chance 0.3333)",
				"prerouting nat/KUBE-SEP-JCWIK3PO2NYV27FM: dnat 198.19.1.2:8080",
				"forward filter/FORWARD: jump KUBE-PROXY-FIREWALL", "forward filter/FORWARD: jump KUBE-FORWARD",
				"forward filter/KUBE-FORWARD: accept",
				"postrouting nat/POSTROUTING: jump KUBE-POSTROUTING", "postrouting nat/KUBE-POSTROUTING: mark 0x0",
				"postrouting nat/KUBE-POSTROUTING: masquerade"}},
		{"kube: the node to a Service without endpoints", kube, fromHost("198.19.2.11:80"), labHost,
			[]string{"reject 198.19.2.11:80 p=1.000 by KUBE-SERVICES #default/empty:http has no endpoints"}, "output", nil},
		{"kube: a client through the node to a Service without endpoints", kube, fromClient("198.19.2.11:80"), labHost,
			[]string{"reject 198.19.2.11:80 p=1.000 by KUBE-SERVICES #default/empty:http has no endpoints"}, "prerouting", nil},
		{"kube: a client to the NodePort of a Service without endpoints", kube, fromClient("198.18.0.2:30081"), labHost,
			[]string{"reject 198.18.0.2:30081 local p=1.000 by KUBE-EXTERNAL-SERVICES #default/empty:http has no endpoints"}, "prerouting", nil},
		{"kube: a pod to a ClusterIP keeps its address", kube,
			Conn{Src: netip.MustParseAddr("198.19.1.3"), In: "cni0", Dst: ap("198.19.2.10:80")}, labHost,
			[]string{
				"accept 198.19.1.2:8080 p=0.333 via KUBE-SEP-JCWIK3PO2NYV27FM #default/web:http",
				"accept 198.19.1.3:8080 p=0.333 via KUBE-SEP-ESG6OKDJYR56WYBF #default/web:http",
				"accept 198.19.1.4:8080 p=0.333 via KUBE-SEP-3Q3X35PLQVUZRL6Y #default/web:http",
			}, "prerouting", nil},

		{"kube nft: the node to a ClusterIP, split three ways", nkube, fromHost("198.19.2.10:80"), labHost,
			[]string{
				"accept 198.19.1.2:8080 p=0.333 via endpoint-5OJB2KTY-default/web/tcp/http__198.19.1.2/8080",
				"accept 198.19.1.3:8080 p=0.333 via endpoint-UNZV3OEC-default/web/tcp/http__198.19.1.3/8080",
				"accept 198.19.1.4:8080 p=0.333 via endpoint-SGOXE6O3-default/web/tcp/http__198.19.1.4/8080",
			}, "output", nil},
		{"kube nft: a client to a NodePort", nkube, fromClient("198.18.0.2:30080"), labHost,
			[]string{
				"accept 198.19.1.2:8080 p=0.333 via endpoint-5OJB2KTY-default/web/tcp/http__198.19.1.2/8080",
				"accept 198.19.1.3:8080 p=0.333 via endpoint-UNZV3OEC-default/web/tcp/http__198.19.1.3/8080",
				"accept 198.19.1.4:8080 p=0.333 via endpoint-SGOXE6O3-default/web/tcp/http__198.19.1.4/8080",
			}, "prerouting", nil},
		{"kube nft: the node to a Service without endpoints: the map element names it", nkube, fromHost("198.19.2.12:80"), labHost,
			[]string{"reject 198.19.2.12:80 p=1.000 by reject-chain #default/empty:http"}, "output",
			[]string{"output ip kube-proxy/nat-output: jump services", "output ip kube-proxy/filter-output: jump service-endpoints-check",
				"output ip kube-proxy/service-endpoints-check: vmap @no-endpoint-services: 198.19.2.12 . tcp . 80 : goto reject-chain",
				"output ip kube-proxy/reject-chain: reject"}},
		{"kube nft: a client to the NodePort of a Service without endpoints", nkube, fromClient("198.18.0.2:30081"), labHost,
			[]string{"reject 198.18.0.2:30081 local p=1.000 by reject-chain #default/empty:http"}, "prerouting", nil},
		{"kube nft: a ClusterIP's other port", nkube, fromClient("198.19.2.10:81"), labHost,
			[]string{"reject 198.19.2.10:81 p=1.000 by cluster-ips-check #Reject traffic to invalid ports of ClusterIPs"}, "prerouting", nil},
		{"kube nft: an unallocated ClusterIP", nkube, fromClient("198.19.2.99:80"), labHost,
			[]string{"drop 198.19.2.99:80 p=1.000 by cluster-ips-check #Drop traffic to unallocated ClusterIPs"}, "prerouting", nil},

		{"docker nft: a client to the published port", ndocker, fromClient("198.18.0.2:8080"), labHost,
			[]string{"accept 198.19.0.2:80 p=1.000 via nat-prerouting-and-output #DNAT"}, "prerouting",
			[]string{"prerouting ip docker-bridges/nat-PREROUTING: jump nat-prerouting-and-output",
				"prerouting ip docker-bridges/nat-prerouting-and-output: dnat 198.19.0.2:80",
				"forward ip docker-bridges/filter-FORWARD: vmap @filter-forward-in-jumps: docker0 : jump filter-forward-in__docker0",
				"forward ip docker-bridges/filter-forward-in__docker0: accept",
				"postrouting ip docker-bridges/nat-POSTROUTING: vmap @nat-postrouting-in-jumps: docker0 : jump nat-postrouting-in__docker0"}},
		{"docker nft: routes unknown: the verdict maps do not change the outcome", ndocker, fromClient("198.18.0.2:8080"), noRoute,
			[]string{"accept 198.19.0.2:80 p=1.000 via nat-prerouting-and-output #DNAT"}, "prerouting", nil},
		{"docker nft: an unpublished port of a container", ndocker, Conn{Src: netip.MustParseAddr("198.19.0.3"), In: "docker0", Dst: ap("198.19.0.2:81")}, labHost,
			[]string{"accept 198.19.0.2:81 p=1.000"}, "prerouting", nil},
		{"docker nft: the host to a port published on its loopback: not translated (docker-proxy's)", ndocker,
			fromHost("127.0.0.1:8081"), labHost, []string{"accept 127.0.0.1:8081 local p=1.000"}, "output", nil},
		{"docker nft: the host to its published port", ndocker, fromHost("198.18.0.2:8080"), labHost,
			[]string{"accept 198.19.0.2:80 p=1.000 via nat-prerouting-and-output #DNAT"}, "output", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Walk(tc.rs, tc.c, tc.h)
			checkPath(t, p)
			if p.Hook != tc.hook {
				t.Errorf("hook %q, want %q", p.Hook, tc.hook)
			}
			if got := lines(p); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(p.Problems) > 0 {
				t.Errorf("problems: %v", p.Problems)
			}
			if tc.steps != nil && len(p.Outcomes) > 0 {
				var got []string
				for _, s := range p.Outcomes[0].Steps {
					got = append(got, s.String())
				}
				if !slices.Equal(got, tc.steps) {
					t.Errorf("steps\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.steps, "\n"))
				}
			}
		})
	}
}

// Translations and matches, one rule at a time: REDIRECT at both hooks,
// port and address ranges, goto and return, random splits of both kinds,
// marks set in mangle and matched in nat, conntrack's DNAT state, nat
// decided once across tables, negations, IPv6; and nft's forms of them.
func TestWalkForms(t *testing.T) {
	forms := mustParseNft(t, "nft-forms.json", "nft-forms.txt")
	ipt := func(nat string) *Ruleset {
		return mustParseIpt(t, "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"+nat+"COMMIT\n", "ip")
	}
	host := Host{LocalAddrs: hostOnly, Route: labHost.Route}
	for _, tc := range []struct {
		name string
		rs   *Ruleset
		c    Conn
		want []string
	}{
		{"REDIRECT at PREROUTING: to the incoming interface's address", ipt("-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 0.0.0.0:8080 local p=1.000 via PREROUTING"}},
		{"REDIRECT at OUTPUT: to loopback", ipt("-A OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 8080\n"),
			Conn{Local: true, Dst: ap("198.18.9.9:80")}, []string{"accept 127.0.0.1:8080 local p=1.000 via OUTPUT"}},
		{"REDIRECT without ports keeps the port; IPv6's loopback", mustParseIpt(t, "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp -j REDIRECT\nCOMMIT\n", "ip6"),
			Conn{Local: true, Dst: ap("[fd00::9]:80")}, []string{"accept [::1]:80 local p=1.000 via OUTPUT"}},
		{"DNAT to a port range holding the packet's port keeps it", ipt("-A PREROUTING -p tcp -j DNAT --to-destination 198.19.0.2:8000-8100\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:8050")}, []string{"accept 198.19.0.2:8050 p=1.000 via PREROUTING"}},
		{"DNAT to a port range: one of them", ipt("-A PREROUTING -p tcp -j DNAT --to-destination 198.19.0.2:8000-8100\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.19.0.2:8000 to invalid IP:8100 p=1.000 via PREROUTING"}},
		{"DNAT to an address range", ipt("-A PREROUTING -p tcp -j DNAT --to-destination 198.19.0.2-198.19.0.4:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:8080")}, []string{"accept 198.19.0.2:80 to 198.19.0.4:0 p=1.000 via PREROUTING"}},
		{"DNAT of the address only", ipt("-A PREROUTING -p tcp -j DNAT --to-destination 198.19.0.2\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:8080")}, []string{"accept 198.19.0.2:8080 p=1.000 via PREROUTING"}},
		{"goto, then return: back to the chain that jumped", ipt("-A PREROUTING -j A\n-A PREROUTING -p tcp -j DNAT --to-destination 198.19.0.9:80\n" +
			"-A A -g B\n-A A -p tcp -j DNAT --to-destination 198.19.0.7:80\n-A B -j RETURN\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.19.0.9:80 p=1.000 via PREROUTING"}},
		{"return from the base chain: its policy", ipt("-A PREROUTING -j RETURN\n-A PREROUTING -p tcp -j DNAT --to-destination 198.19.0.9:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.18.0.2:80 local p=1.000"}},
		{"statistic, random: the chances multiply down the chain", ipt(
			"-A PREROUTING -m statistic --mode random --probability 0.25 -j DNAT --to-destination 198.19.0.1:80\n" +
				"-A PREROUTING -m statistic --mode random --probability 0.5 -j DNAT --to-destination 198.19.0.2:80\n" +
				"-A PREROUTING -j DNAT --to-destination 198.19.0.3:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{
				"accept 198.19.0.2:80 p=0.375 via PREROUTING", "accept 198.19.0.3:80 p=0.375 via PREROUTING",
				"accept 198.19.0.1:80 p=0.250 via PREROUTING"}},
		{"statistic, nth: one in every N", ipt("-A PREROUTING -m statistic --mode nth --every 4 --packet 0 -j DNAT --to-destination 198.19.0.1:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.18.0.2:80 local p=0.750", "accept 198.19.0.1:80 p=0.250 via PREROUTING"}},
		{"a mark set in mangle is matched in nat", mustParseIpt(t, "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n"+
			"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m mark ! --mark 0x1 -j RETURN\n-A PREROUTING -j DNAT --to-destination 198.19.0.1:80\nCOMMIT\n", "ip"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.19.0.1:80 p=1.000 via PREROUTING"}},
		{"a mark nothing set", mustParseIpt(t, "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m mark --mark 0x1/0x1 -j DNAT --to-destination 198.19.0.1:80\nCOMMIT\n", "ip"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.18.0.2:80 local p=1.000"}},
		{"conntrack's DNAT state, after DNAT", mustParseIpt(t, "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 198.19.0.1:80\nCOMMIT\n"+
			"*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\nCOMMIT\n", "ip"),
			Conn{Src: client, Dst: ap("198.19.0.5:80")}, []string{"accept 198.19.0.1:80 p=1.000 via PREROUTING"}},
		{"conntrack's DNAT state, without", mustParseIpt(t, "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\nCOMMIT\n", "ip"),
			Conn{Src: client, Dst: ap("198.19.0.5:80")}, []string{"drop 198.19.0.5:80 p=1.000 by FORWARD"}},
		{"--syn and --tcp-flags match the first packet", ipt("-A PREROUTING -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DNAT --to-destination 198.19.0.1:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.19.0.1:80 p=1.000 via PREROUTING"}},
		{"negations", ipt("-A PREROUTING ! -p udp ! -s 198.19.0.0/16 ! -d 198.18.0.9 -m tcp ! --dport 81 -j DNAT --to-destination 198.19.0.1:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.19.0.1:80 p=1.000 via PREROUTING"}},
		{"negations that fail", ipt("-A PREROUTING ! -s 198.18.0.0/16 -j DNAT --to-destination 198.19.0.1:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.18.0.2:80 local p=1.000"}},
		{"another protocol", ipt("-A PREROUTING -p udp -j DNAT --to-destination 198.19.0.1:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.18.0.2:80 local p=1.000"}},
		{"the protocol asked", ipt("-A PREROUTING -p udp -j DNAT --to-destination 198.19.0.1:53\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:53"), Proto: "udp"}, []string{"accept 198.19.0.1:53 p=1.000 via PREROUTING"}},
		{"an address of the host a rule names as local", ipt("-A PREROUTING -m addrtype ! --dst-type LOCAL -j DNAT --to-destination 198.19.0.1:80\n"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.18.0.2:80 local p=1.000"}},
		{"NOTRACK in raw: no nat for an untracked packet", mustParseIpt(t, "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j CT --notrack\nCOMMIT\n"+
			"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DNAT --to-destination 198.19.0.1:80\nCOMMIT\n"+
			"*filter\n:INPUT DROP [0:0]\n-A INPUT -m state --state UNTRACKED -j ACCEPT\nCOMMIT\n", "ip"),
			Conn{Src: client, Dst: ap("198.18.0.2:80")}, []string{"accept 198.18.0.2:80 local p=1.000"}},
		{"the OUTPUT filter chain sees the interface routing picks after DNAT", mustParseIpt(t, "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp --dport 80 -j DNAT --to-destination 198.19.0.1:80\nCOMMIT\n"+
			"*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -o docker0 -j REJECT\nCOMMIT\n", "ip"),
			Conn{Local: true, Dst: ap("198.18.9.9:80")}, []string{"reject 198.19.0.1:80 p=1.000 via OUTPUT by OUTPUT"}},
		{"IPv6", mustParseIpt(t, "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d fd00::2/128 -p tcp --dport 80 -j DNAT --to-destination [fd00:1::2]:8080\nCOMMIT\n", "ip6"),
			Conn{Src: netip.MustParseAddr("fd00::1"), Dst: ap("[fd00::2]:80")}, []string{"accept [fd00:1::2]:8080 p=1.000 via PREROUTING"}},
		{"IPv4 rules leave IPv6 alone", ipt("-A PREROUTING -j DNAT --to-destination 198.19.0.1:80\n"),
			Conn{Src: netip.MustParseAddr("fd00::1"), Dst: ap("[fd00::2]:80")}, []string{"accept [fd00::2]:80 p=1.000"}},

		{"nft: a mark set then matched", forms, Conn{Src: client, Dst: ap("198.18.0.2:7001")}, []string{"accept 198.19.3.1:80 p=1.000 via prerouting #marked"}},
		{"nft: a port range", forms, Conn{Src: client, Dst: ap("198.18.0.2:7002")}, []string{"accept 198.19.3.2:8000 to invalid IP:8010 p=1.000 via prerouting"}},
		{"nft: an address range", forms, Conn{Src: client, Dst: ap("198.18.0.2:7003")}, []string{"accept 198.19.3.3:7003 to 198.19.3.5:0 p=1.000 via prerouting"}},
		{"nft: redirect", forms, Conn{Src: client, Dst: ap("198.18.0.2:7005")}, []string{"accept 0.0.0.0:8080 local p=1.000 via prerouting"}},
		{"nft: an interface set", forms, Conn{Src: client, In: "eth1", Dst: ap("198.18.0.2:7006")}, []string{"accept 198.19.3.6:80 p=1.000 via prerouting"}},
		{"nft: an interface set, the interface unknown", forms, Conn{Src: client, Dst: ap("198.18.0.2:7006")}, []string{
			`accept 198.19.3.6:80 p=1.000 via prerouting | if meta iifname == { "eth*", "wg0" }`,
			`accept 198.18.0.2:7006 local p=1.000 | unless meta iifname == { "eth*", "wg0" }`}},
		{"nft: a negated source prefix", forms, Conn{Src: client, Dst: ap("198.18.0.2:7007")}, []string{"accept 198.18.0.2:7007 local p=1.000"}},
		{"nft: numgen in a match", forms, Conn{Src: client, Dst: ap("198.18.0.2:7008")}, []string{
			"accept 198.19.3.9:80 p=0.750 via prerouting", "accept 198.19.3.8:80 p=0.250 via prerouting"}},
		{"nft: a named interval set of ports", forms, Conn{Src: client, Dst: ap("198.18.0.2:8042")}, []string{"accept 198.19.3.10:8042 p=1.000 via prerouting"}},
		{"nft: fib type of a local address", forms, Conn{Src: client, Dst: ap("198.18.0.2:7009")}, []string{"accept 198.18.0.2:7009 local p=1.000"}},
		{"nft: ct status dnat accepts what was translated", forms, Conn{Src: client, Dst: ap("198.18.0.3:7002")}, []string{
			"accept 198.19.3.2:8000 to invalid IP:8010 p=1.000 via prerouting"}},
		{"nft: the forward policy drops the rest", forms, Conn{Src: client, Dst: ap("198.18.0.3:9999")}, []string{"drop 198.18.0.3:9999 p=1.000 by forward"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Walk(tc.rs, tc.c, host)
			checkPath(t, p)
			if got := lines(p); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(p.Problems) > 0 {
				t.Errorf("problems: %v", p.Problems)
			}
		})
	}
}

// Destination nat is decided once: the first nat chain that translates
// wins, and nat chains after it at that hook are not consulted, in
// whichever table they are (iptables' nat, an nft table of the same
// priority, read after it).
func TestWalkNatDecidedOnce(t *testing.T) {
	rs := mustParseIpt(t, "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 198.19.0.1:80\nCOMMIT\n", "ip")
	nft, err := ParseNftJSON([]byte(`{"nftables":[
		{"chain":{"family":"ip","table":"t","name":"pre","type":"nat","hook":"prerouting","prio":-100,"policy":"accept"}},
		{"chain":{"family":"ip","table":"t","name":"early","type":"nat","hook":"prerouting","prio":-200,"policy":"accept"}},
		{"rule":{"family":"ip","table":"t","chain":"pre","handle":1,"expr":[{"dnat":{"addr":"198.19.0.2","port":80}}]}},
		{"rule":{"family":"ip","table":"t","chain":"early","handle":2,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":81}},{"dnat":{"addr":"198.19.0.3","port":81}}]}}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	rs.Tables = append(rs.Tables, nft.Tables...)
	for dst, want := range map[string]string{
		"198.18.0.2:80": "accept 198.19.0.1:80 p=1.000 via PREROUTING", // iptables' nat first, nft's not consulted
		"198.18.0.2:81": "accept 198.19.0.3:81 p=1.000 via early",      // a lower priority runs first
		"198.18.0.2:82": "accept 198.19.0.2:80 p=1.000 via pre",        // iptables' did nothing: nft's turn
	} {
		p := Walk(rs, Conn{Src: client, Dst: ap(dst)}, Host{LocalAddrs: hostOnly})
		checkPath(t, p)
		if got := lines(p); len(got) != 1 || got[0] != want {
			t.Errorf("%s: got %q, want %q", dst, got, want)
		}
	}
}

// Rules the walk cannot follow end their path with an unknown outcome and
// a problem, never a loop or a panic; undecided matches are taken both
// ways, quoted in MayMatch.
func TestWalkBadInput(t *testing.T) {
	ipt := func(nat string) *Ruleset {
		return mustParseIpt(t, "*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"+nat+"COMMIT\n", "ip")
	}
	nftRules := func(rules ...string) *Ruleset {
		js := `{"nftables":[{"chain":{"family":"ip","table":"t","name":"pre","type":"nat","hook":"prerouting","prio":-100,"policy":"accept"}},
			{"chain":{"family":"ip","table":"t","name":"a"}},{"chain":{"family":"ip","table":"t","name":"b"}}`
		for i, r := range rules {
			chain, expr, _ := strings.Cut(r, " ")
			js += fmt.Sprintf(`,{"rule":{"family":"ip","table":"t","chain":%q,"handle":%d,"expr":%s}}`, chain, i+1, expr)
		}
		rs, err := ParseNftJSON([]byte(js+"]}"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	c := Conn{Src: client, Dst: ap("198.18.0.2:80")}
	for _, tc := range []struct {
		name    string
		rs      *Ruleset
		err     error // of the one problem; nil for none
		want    []string
		mayText string // the rule in MayMatch, if any
	}{
		{"a cycle of jumps", ipt("-A PREROUTING -j A\n-A A -j B\n-A B -j A\n"), ErrCycle,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"a cycle of gotos", ipt("-A PREROUTING -j A\n-A A -g B\n-A B -g A\n"), ErrCycle,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"a chain jumping to itself", ipt("-A PREROUTING -j A\n-A A -j A\n"), ErrCycle,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"nft: a jump to a missing chain", nftRules(`pre [{"jump":{"target":"nowhere"}}]`), ErrMissingChain,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"nft: a verdict map that is not there", nftRules(`pre [{"vmap":{"key":{"payload":{"protocol":"ip","field":"daddr"}},"data":"@gone"}}]`), ErrMissingChain,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"nft: a cycle through a verdict map", nftRules(`pre [{"jump":{"target":"a"}}]`,
			`a [{"vmap":{"key":{"meta":{"key":"l4proto"}},"data":{"set":[["tcp",{"jump":{"target":"a"}}]]}}}]`), ErrCycle,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"a target that is neither a chain nor known", ipt("-A PREROUTING -j KUBE-SVC-GONE\n"), ErrUnknownTarget,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"a match the walk does not know", ipt("-A PREROUTING -m recent --rcheck --name x -j DNAT --to-destination 198.19.0.5:80\n"), nil,
			[]string{"accept 198.19.0.5:80 p=1.000 via PREROUTING | if --rcheck, --name x", "accept 198.18.0.2:80 local p=1.000 | unless --rcheck, --name x"},
			"-A PREROUTING -m recent --rcheck --name x -j DNAT --to-destination 198.19.0.5:80"},
		{"an unknown match that changes nothing", ipt("-A PREROUTING -m recent --rcheck --name x -j LOG\n-A PREROUTING -m foo --bar -j A\n"), nil,
			[]string{"accept 198.18.0.2:80 local p=1.000"}, ""},
		{"nft: a translation by a map the walk does not read", nftRules(`pre [{"dnat":{"addr":{"map":{"key":{"payload":{"protocol":"ip","field":"daddr"}},"data":{"set":[["198.18.0.2","198.19.3.4"]]}}}}}]`),
			ErrUnknownTarget, []string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
		{"a translation to another family", ipt("-A PREROUTING -j DNAT --to-destination [fd00::1]:80\n"), ErrUnknownTarget,
			[]string{"unknown 198.18.0.2:80 local p=1.000"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Walk(tc.rs, c, Host{LocalAddrs: hostOnly})
			checkPath(t, p)
			if got := lines(p); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			switch {
			case tc.err == nil && len(p.Problems) > 0:
				t.Errorf("problems %v", p.Problems)
			case tc.err != nil && (len(p.Problems) != 1 || !errors.Is(p.Problems[0], tc.err)):
				t.Errorf("problems %v, want one %v", p.Problems, tc.err)
			case tc.err != nil:
				var we *WalkError
				if !errors.As(p.Problems[0], &we) || we.Rule == nil || !strings.Contains(we.Error(), we.Rule.Text) {
					t.Errorf("problem %v does not quote its rule", p.Problems[0])
				}
			}
			var may []string
			for _, m := range p.MayMatch {
				may = append(may, m.Rule.Text)
			}
			if want := []string{tc.mayText}; tc.mayText != "" && !slices.Equal(may, want) || tc.mayText == "" && len(may) > 0 {
				t.Errorf("may match %q, want %q", may, tc.mayText)
			}
			if p.Certain() != (tc.err == nil && tc.mayText == "") {
				t.Errorf("certain %v", p.Certain())
			}
		})
	}
}

// fuzzConns are the packets the fuzz tests walk: from this host and from
// elsewhere, with and without what the walk may be told.
var fuzzConns = []Conn{
	{Local: true, Dst: ap("198.18.0.2:8080")},
	{Src: client, In: "eth0", Dst: ap("198.18.0.2:80")},
	{Dst: ap("198.19.2.10:80")},
	{Src: netip.MustParseAddr("fd00::1"), Dst: ap("[fd00::2]:443"), Proto: "udp"},
}

// fuzzWalk walks rs for each of fuzzConns, with and without the host's
// facts, and checks the paths keep their invariants.
func fuzzWalk(t *testing.T, rs *Ruleset) {
	for _, c := range fuzzConns {
		for _, h := range []Host{{}, labHost} {
			start := time.Now()
			p := Walk(rs, c, h)
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("%+v: the walk took %v", c, d)
			}
			checkPath(t, p)
			if len(p.Outcomes) == 0 {
				t.Fatalf("%+v: no outcome", c)
			}
		}
	}
}

// Walks over any ruleset the parsers accept end, within bounds, without
// a panic, and their outcomes keep their invariants.
func FuzzWalkIptables(f *testing.F) {
	for _, name := range []string{"iptables-save.txt", "iptables-save-nat.txt", "iptables-save-docker.txt", "iptables-save-kube.txt"} {
		f.Add(mustRead(f, name))
	}
	f.Add("*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A PREROUTING -j A\n-A A -g B\n-A B -j A\n-A B -m statistic --mode random --probability 0.5 -j DNAT --to-destination 198.19.0.1-198.19.0.3:80-90\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseIptablesSave(s, "ip")
		if err != nil {
			return
		}
		fuzzWalk(t, rs)
	})
}

func FuzzWalkNft(f *testing.F) {
	for _, name := range []string{"nft.json", "nft-nat.json", "nft-kube.json", "nft-docker.json", "nft-forms.json"} {
		f.Add([]byte(mustRead(f, name)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseNftJSON(b, nil)
		if err != nil {
			return
		}
		fuzzWalk(t, rs)
	})
}

// A ruleset full of undecided rules that each change the outcome stops at
// the walk's bounds, says so, and keeps what it found.
func TestWalkBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n")
	for i := range 200 {
		fmt.Fprintf(&b, "-A PREROUTING -m foo --x%d -j A\n", i)
		fmt.Fprintf(&b, "-A PREROUTING -m foo --y%d -p tcp -j DNAT --to-destination 198.19.0.%d:80\n", i, i+1)
	}
	b.WriteString("-A A -m bar --z -j MARK --set-xmark 0x1/0x1\n-A A -m mark --mark 0x1 -j RETURN\nCOMMIT\n")
	p := Walk(mustParseIpt(t, b.String(), "ip"), Conn{Src: client, Dst: ap("198.18.0.2:80")}, labHost)
	checkPath(t, p)
	limited := false
	for _, e := range p.Problems {
		limited = limited || errors.Is(e, ErrWalkLimit)
	}
	if !limited || len(p.Outcomes) < 2 || len(p.MayMatch) < 2 {
		t.Errorf("%d outcomes, may match %d rules, problems %v", len(p.Outcomes), len(p.MayMatch), p.Problems)
	}
}
