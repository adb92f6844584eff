package doctor

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/firewall"
	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// The evidence of a Docker host as its agent sends it: 198.18.0.2, a
// docker0 bridge at 198.19.0.1/24, container web at 198.19.0.2 (docker
// 3f2a...), whose listeners each case sets.
var (
	natHost = netip.MustParseAddr("198.18.0.2")
	natWeb  = netip.MustParseAddr("198.19.0.2")
	webID   = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
	webNS   = sockets.Namespace{Inode: 4026532999, PID: 4242, Processes: 1,
		Container: &sockets.Container{ID: webID, Runtime: "docker"}}
	webPeer = sockets.Peer{Namespace: webNS, Link: "veth3f2a1b4", Bridge: "docker0",
		Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("198.19.0.2/24")}}
	dnat8080 = &firewall.Rule{Source: "iptables", Table: "nat", Chain: "DOCKER", Verdict: "dnat", To: "198.19.0.2:80",
		Text: "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.0.2:80"}
	kubeReject = &firewall.Rule{Source: "iptables", Table: "filter", Chain: "KUBE-SERVICES", Verdict: "reject",
		Comment: "default/api:http has no endpoints",
		Text:    `-A KUBE-SERVICES -d 198.19.2.11/32 -p tcp -m comment --comment "default/api:http has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable`}
)

// inWeb is a listener in web's namespace.
func inWeb(addr string) sockets.Socket {
	ns := webNS
	return sockets.Socket{Proto: "tcp", Local: netip.MustParseAddrPort(addr), State: sockets.StateListen,
		Processes: []sockets.Process{{PID: 4242, Command: "nginx"}}, Namespace: &ns, Container: ns.Container}
}

// dockerHost is the agent's answer for dst: the walk ways it gives, its
// own listeners and its containers' (all of them seen).
func dockerHost(dst netip.AddrPort, ways []NATOutcome, own []sockets.Socket, web ...sockets.Socket) HostEvidence {
	return HostEvidence{Host: "agent docker",
		Addresses: []netip.Prefix{netip.PrefixFrom(natHost, 24), netip.MustParsePrefix("198.19.0.1/24"), netip.MustParsePrefix("127.0.0.1/8")},
		Listening: append([]sockets.Socket{}, own...), Firewall: true,
		Peers: []sockets.Peer{webPeer}, PeerListening: web, PeersSeen: true,
		NAT: []NATPath{{Dst: dst, Hook: "prerouting", Outcomes: ways}}, NATWalked: true}
}

// toWeb is the one way a DNAT rule sends a connection: to web's port 80.
var toWeb = []NATOutcome{{Verdict: "accept", Dst: netip.AddrPortFrom(natWeb, 80), Translation: dnat8080, Probability: 1}}

// asIs is the way of a connection no rule translates, to the host itself.
func asIs(dst netip.AddrPort) []NATOutcome {
	return []NATOutcome{{Verdict: "accept", Dst: dst, Local: true, Probability: 1}}
}

// unpublished is ev with its containers' listeners nothing leads to, as an
// agent that read its whole ruleset sends them.
func unpublished(ev HostEvidence) HostEvidence { ev.Unpublished = ev.PeerListening; return ev }

// noHairpin is the way of a connection from the bridge that Docker's
// RETURN keeps from the DNAT publishing the port.
func noHairpin(dst netip.AddrPort) []NATOutcome {
	ret := &firewall.Rule{Source: "iptables", Table: "nat", Chain: "DOCKER", Verdict: "return", Text: "-A DOCKER -i docker0 -j RETURN"}
	return []NATOutcome{{Verdict: "accept", Dst: dst, Local: true, Probability: 1, Skipped: dnat8080, Return: ret}}
}

// TestNATCauses runs the ladder on evidence an agent on a Docker host or a
// Kubernetes node might send: the cause each layout names, how sure it is,
// and how doubt about the rules or the containers lowers it.
func TestNATCauses(t *testing.T) {
	ap := netip.AddrPortFrom(natHost, 8080)
	proxy := sockets.Socket{Proto: "tcp", Local: netip.MustParseAddrPort("127.0.0.1:8080"), State: sockets.StateListen,
		Processes: []sockets.Process{{PID: 77, Command: "docker-proxy"}}}
	anyProxy := proxy
	anyProxy.Local = netip.MustParseAddrPort("0.0.0.0:8080")
	withProxy := func(ev HostEvidence, listen string) HostEvidence {
		ev.Proxies = []sockets.Forward{{Proxy: "docker-proxy", PID: 77, Listen: netip.MustParseAddrPort(listen), To: netip.AddrPortFrom(natWeb, 80)}}
		return ev
	}
	mayMatch := func(ev HostEvidence) HostEvidence {
		ev.NAT[0].MayMatch = []string{`iptables nat/PREROUTING: -A PREROUTING -m foo -j DOCKER (if -m foo)`}
		return ev
	}
	unseen := func(ev HostEvidence) HostEvidence { ev.PeersNotSeen = 1; return ev }
	oldAgent := func(ev HostEvidence) HostEvidence {
		ev.NAT, ev.NATWalked, ev.PeersSeen, ev.Peers, ev.PeerListening = nil, false, false, nil, nil
		return ev
	}
	clusterIP := netip.MustParseAddrPort("198.19.2.11:80")
	tests := []struct {
		name     string
		dst      netip.AddrPort
		class    probe.Class
		ev       HostEvidence
		cause    Cause
		conf     Confidence
		evidence []string
		fix      string
	}{
		{"healthy", ap, probe.Open, dockerHost(ap, toWeb, nil, inWeb("0.0.0.0:80")), Reachable, Confirmed,
			[]string{"→ DNAT (iptables nat/DOCKER: -A DOCKER", "→ 198.19.0.2:80 in container docker 3f2a1b4c5d6e (netns of pid 4242), nginx (pid 4242) listens on 0.0.0.0:80"}, ""},
		{"on the container's loopback", ap, probe.Refused, dockerHost(ap, toWeb, nil, inWeb("127.0.0.1:80")), LoopbackOnly, Confirmed,
			[]string{"198.18.0.2:8080 → DNAT", "in container docker 3f2a1b4c5d6e", "listens on 127.0.0.1:80"}, "listen on 0.0.0.0:80"},
		{"on the container's loopback, a rule undecided", ap, probe.Refused, mayMatch(dockerHost(ap, toWeb, nil, inWeb("127.0.0.1:80"))), LoopbackOnly, Likely,
			[]string{"could not be checked may send it elsewhere", "-m foo"}, "listen on 0.0.0.0:80"},
		{"on the container's loopback, but the probe timed out", ap, probe.Timeout, dockerHost(ap, toWeb, nil, inWeb("127.0.0.1:80")), LoopbackOnly, Likely, nil, ""},
		{"published to another port", ap, probe.Refused, dockerHost(ap, toWeb, nil, inWeb("0.0.0.0:8000")), NATMismatch, Confirmed,
			[]string{"where nothing listens on port 80", "listens on 0.0.0.0:8000"}, "-p 8080:8000"},
		{"nothing listens in the container", ap, probe.Refused, dockerHost(ap, toWeb, nil), NotListening, Confirmed,
			[]string{"in container docker 3f2a1b4c5d6e"}, "docker logs 3f2a1b4c5d6e"},
		{"the container is gone", ap, probe.HostUnreachable, func() HostEvidence {
			ev := dockerHost(ap, toWeb, nil)
			ev.Peers = nil
			return ev
		}(), NATTargetGone, Confirmed, []string{"which no network namespace of agent docker has", "0 namespaces looked at"}, "docker start"},
		{"the container is gone, or among the namespaces not seen", ap, probe.HostUnreachable, func() HostEvidence {
			ev := unseen(dockerHost(ap, toWeb, nil))
			ev.Peers = nil
			return ev
		}(), NATTargetGone, Likely, []string{"could not be looked at"}, "docker start"},
		{"a DNAT to another host: what refuses is there, the client's guess stands", ap, probe.Refused, dockerHost(ap, []NATOutcome{{Verdict: "accept",
			Dst: netip.MustParseAddrPort("198.18.7.7:80"), Translation: dnat8080, Probability: 1}}, nil), NotListening, Likely, []string{"answered the SYN with a reset"}, ""},
		{"not published, the container on another port", ap, probe.Refused, unpublished(dockerHost(ap, asIs(ap), nil, inWeb("0.0.0.0:80"))),
			NotListening, Likely, []string{"nginx (pid 4242) listens on 198.19.0.2:80 in container docker 3f2a1b4c5d6e", "nothing is published to"}, ""},
		{"the container on another port, published", ap, probe.Refused, dockerHost(ap, asIs(ap), nil, inWeb("0.0.0.0:80")),
			NotListening, Confirmed, nil, ""},
		{"from the bridge, no hairpin", ap, probe.Refused, dockerHost(ap, noHairpin(ap), nil, inWeb("0.0.0.0:80")),
			NotPublished, Likely, []string{"-A DOCKER -i docker0 -j RETURN returns it", dnat8080.Text}, "directly at 198.19.0.2:80"},
		{"not published", netip.AddrPortFrom(natHost, 80), probe.Refused, dockerHost(netip.AddrPortFrom(natHost, 80), asIs(netip.AddrPortFrom(natHost, 80)), nil, inWeb("0.0.0.0:80")),
			NotPublished, Likely, []string{"nginx (pid 4242) listens on 0.0.0.0:80 in container docker 3f2a1b4c5d6e"}, "docker run -p 80:80"},
		{"published on 127.0.0.1 by docker-proxy", ap, probe.Refused, withProxy(dockerHost(ap, asIs(ap), []sockets.Socket{proxy}, inWeb("0.0.0.0:80")), "127.0.0.1:8080"),
			PublishedOnLoopback, Confirmed, []string{"127.0.0.1:8080 → docker-proxy (pid 77) → 198.19.0.2:80 in container docker 3f2a1b4c5d6e"}, "-p 8080:80 (not -p 127.0.0.1:8080:80)"},
		{"published on 127.0.0.1 by a DNAT rule", ap, probe.Refused, func() HostEvidence {
			ev := dockerHost(ap, asIs(ap), nil, inWeb("0.0.0.0:80"))
			ev.NAT = append(ev.NAT, NATPath{Dst: netip.MustParseAddrPort("127.0.0.1:8080"), Hook: "output", Outcomes: toWeb})
			return ev
		}(), PublishedOnLoopback, Confirmed, []string{"127.0.0.1:8080 → DNAT"}, "-p 8080:80"},
		{"docker-proxy's backend on the container's loopback", ap, probe.ClosedByPeer,
			withProxy(dockerHost(ap, asIs(ap), []sockets.Socket{anyProxy}, inWeb("127.0.0.1:80")), "0.0.0.0:8080"),
			ProxyBackendDown, Confirmed, []string{"198.18.0.2:8080 → docker-proxy (pid 77) → 198.19.0.2:80", "listens on 127.0.0.1:80"}, "listen on 0.0.0.0:80"},
		{"docker-proxy's backend gone", ap, probe.ClosedByPeer, func() HostEvidence {
			ev := withProxy(dockerHost(ap, asIs(ap), []sockets.Socket{anyProxy}), "0.0.0.0:8080")
			ev.Peers = nil
			return ev
		}(), ProxyBackendDown, Confirmed, []string{"→ docker-proxy (pid 77) → 198.19.0.2:80"}, ""},
		{"docker-proxy with a healthy backend: its own close is the sockets check's", ap, probe.ClosedByPeer,
			withProxy(dockerHost(ap, asIs(ap), []sockets.Socket{anyProxy}, inWeb("0.0.0.0:80")), "0.0.0.0:8080"),
			ClosedByPeer, Confirmed, []string{"docker-proxy (pid 77)"}, ""},
		{"kube-proxy rejects: no endpoints", clusterIP, probe.Refused, dockerHost(clusterIP, []NATOutcome{{Verdict: "reject", Dst: clusterIP,
			Decider: kubeReject, Comment: kubeReject.Comment, Probability: 1}}, nil), NoEndpoints, Confirmed,
			[]string{`"default/api:http has no endpoints"`, "REJECT (iptables filter/KUBE-SERVICES"}, "endpointslices"},
		{"kube-proxy's nftables mode rejects: no endpoints", clusterIP, probe.Refused, dockerHost(clusterIP, []NATOutcome{{Verdict: "reject", Dst: clusterIP,
			Decider: &firewall.Rule{Source: "nftables", Table: "ip kube-proxy", Chain: "reject-chain", Verdict: "reject", Text: "reject"},
			Comment: "default/api:http", Probability: 1,
			Steps: []string{"prerouting ip kube-proxy/service-endpoints-check: vmap @no-endpoint-services: 198.19.2.11 . tcp . 80 : goto reject-chain"}}}, nil),
			NoEndpoints, Confirmed, []string{"@no-endpoint-services", `Service "default/api:http"`}, "Service default/api:http"},
		{"one of two endpoints on its pod's loopback", clusterIP, probe.Refused, dockerHost(clusterIP, []NATOutcome{
			{Verdict: "accept", Dst: netip.AddrPortFrom(natWeb, 80), Translation: dnat8080, Probability: 0.5},
			{Verdict: "accept", Dst: netip.MustParseAddrPort("198.19.0.3:80"), Translation: dnat8080, Probability: 0.5}}, nil, inWeb("127.0.0.1:80")),
			LoopbackOnly, Likely, []string{"(50% of connections)"}, ""},
		{"nothing listens, every namespace seen", ap, probe.Refused, dockerHost(ap, asIs(ap), nil), NotListening, Confirmed, []string{"nothing listens on port 8080"}, ""},
		{"nothing listens, a container's namespace not seen", ap, probe.Refused, unseen(dockerHost(ap, asIs(ap), nil)), NotListening, Likely,
			[]string{"1 network namespace of containers on agent docker could not be looked at"}, ""},
		{"nothing listens, told by an agent that walks no rules", ap, probe.Refused, oldAgent(dockerHost(ap, asIs(ap), nil)), NotListening, Likely,
			[]string{"did not walk its nat rules", "were not looked at"}, ""},
		{"nothing listens, the rules unreadable", ap, probe.Refused, func() HostEvidence {
			ev := oldAgent(dockerHost(ap, asIs(ap), nil))
			ev.Firewall, ev.PeersSeen = false, true
			return ev
		}(), NotListening, Likely, []string{"were not read (run as root"}, ""},
		{"a listener takes it, yet refused, the rules unread", ap, probe.Refused, func() HostEvidence {
			ev := oldAgent(dockerHost(ap, asIs(ap), []sockets.Socket{anyProxy}))
			ev.Firewall = false
			return ev
		}(), FirewallReject, Possible, []string{"listens on 0.0.0.0:8080, yet 198.18.0.2:8080 was answered with a reset"}, "as root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self := fakeHost{addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.9/24")}}
			agents := fakeAgents{tt.dst.Addr(): func(context.Context) (HostEvidence, error) { return tt.ev, nil }}
			opt := Options{Dial: dialClass(tt.class), Sockets: self, Firewall: self, Remote: agents, Probes: 1,
				Ladder: []Stage{{resolved(tt.dst.Addr())}, {TCPCheck, HostCheck}, {SocketsCheck, FirewallCheck, NATCheck}}}
			r := Run(context.Background(), endpoint.Endpoint{Host: tt.dst.Addr().String(), Port: tt.dst.Port()}, opt)
			var text strings.Builder
			r.WriteText(&text, TextOptions{Width: 200})
			if r.Cause != tt.cause || r.Confidence != tt.conf {
				t.Fatalf("%s (%s), want %s (%s)\n%s", r.Cause, r.Confidence, tt.cause, tt.conf, text.String())
			}
			evidence, fix := r.Verdict, ""
			if len(r.Findings) > 0 {
				evidence, fix = r.Findings[0].Evidence, r.Findings[0].Fix
			}
			for _, s := range tt.evidence {
				if !strings.Contains(evidence, s) {
					t.Errorf("evidence does not say %q:\n%s", s, text.String())
				}
			}
			if !strings.Contains(fix, tt.fix) {
				t.Errorf("fix does not say %q: %s", tt.fix, fix)
			}
			for _, f := range r.Findings {
				if f.Cause == NotListening && r.Cause != NotListening && rank(f.Confidence) <= rank(r.Confidence) {
					t.Errorf("not-listening stays %s beside %s", f.Confidence, r.Cause)
				}
			}
		})
	}
}
