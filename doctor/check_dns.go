package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/reach-tools/reach/probe"
)

// DNSCheck resolves the target's name to every A and AAAA address (capped at
// 8), saying which resolver answered and how long it took.
var DNSCheck = CheckFunc{
	CheckName: "dns",
	Fn:        checkDNS,
}

func checkDNS(ctx context.Context, s *State) CheckResult {
	if a, ok := s.Target.Addr(); ok {
		s.Addrs, s.LookupOK = []netip.Addr{a}, true
		return CheckResult{Status: Pass, Detail: fmt.Sprintf("%s is an IP address: nothing to resolve", a)}
	}
	opt := probe.Options{Timeout: s.Options.timeout(), Network: s.Options.Network, Resolver: s.Options.Resolver}
	t0 := time.Now()
	addrs, err := probe.Resolve(ctx, s.Target.Host, opt)
	s.Lookup = time.Since(t0)
	via := resolverName(s.Options.Resolver)
	if err != nil {
		issue, fix := fmt.Sprintf("The name %s does not resolve", s.Target.Host), "check the spelling; check the record exists (dig "+s.Target.Host+" A and AAAA) and that the resolver answers"
		var de *net.DNSError
		if errors.As(err, &de) {
			switch {
			case de.IsNotFound:
				issue = fmt.Sprintf("The name %s does not exist", s.Target.Host)
				fix = "check the spelling, or add the record (A or AAAA) to the zone; a search domain may be missing from resolv.conf"
			case de.IsTimeout:
				issue = fmt.Sprintf("The resolver did not answer for %s", s.Target.Host)
				fix = "check that the resolver (" + via + ") is up and reachable (reach check it on port 53), or use another"
			case resolverRefused(de.Err):
				issue = fmt.Sprintf("Nothing serves DNS at the resolver %s", queried(de))
				fix = "start the DNS server there, or point the nameserver lines of /etc/resolv.conf at one that runs"
			case resolverUnreachable(de.Err):
				server := queried(de)
				host, _, _ := net.SplitHostPort(server)
				issue = fmt.Sprintf("This host cannot reach its resolver %s", server)
				fix = fmt.Sprintf("the query never left this host: check the route to the resolver (ip route get %s) and the nameserver lines of /etc/resolv.conf", host)
			}
		}
		return CheckResult{Status: Fail,
			Detail:   fmt.Sprintf("lookup of %s via %s failed after %s: %v", s.Target.Host, via, round(s.Lookup), unwrapProbe(err)),
			Findings: []Finding{{Cause: DNS, Confidence: Confirmed, Issue: issue, Evidence: fmt.Sprintf("lookup via %s: %v", via, unwrapProbe(err)), Fix: fix}}}
	}
	if len(addrs) > maxAddrs {
		addrs = addrs[:maxAddrs]
	}
	s.Addrs, s.LookupOK = addrs, true
	var v4, v6 int
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
		if a.Is4() {
			v4++
		} else {
			v6++
		}
	}
	return CheckResult{Status: Pass, Detail: fmt.Sprintf("%s → %s (%d A, %d AAAA) via %s in %s", s.Target.Host, strings.Join(strs, ", "), v4, v6, via, round(s.Lookup))}
}

// maxAddrs bounds how many addresses of a name are probed.
const maxAddrs = 8

// resolverRefused and resolverUnreachable read why a query to the resolver
// failed from the DNSError's text: Go's resolver keeps only the text of the
// socket error (no Unwrap), e.g. "read udp ...: connection refused" when the
// resolver's host answered port-unreachable, or "dial udp ...: connect:
// network is unreachable" when this host has no route to it.
func resolverRefused(msg string) bool { return strings.HasSuffix(msg, "connection refused") }

// socketPeer finds the peer in a socket error's text: "dial udp PEER: ..."
// or "read udp LOCAL->PEER: ...".
var socketPeer = regexp.MustCompile(`(?:dial|read|write) (?:udp|tcp)[46]? (?:\S+->)?(\S+?): `)

// queried is the resolver a failed query went to: the socket error names
// it even when a custom Dial sent the query elsewhere than de.Server, the
// first nameserver of resolv.conf, which Go's resolver reports regardless.
func queried(de *net.DNSError) string {
	if m := socketPeer.FindStringSubmatch(de.Err); m != nil {
		return m[1]
	}
	return de.Server
}

func resolverUnreachable(msg string) bool {
	for _, s := range []string{"network is unreachable", "no route to host", "operation not permitted", "permission denied"} {
		if strings.HasSuffix(msg, s) {
			return true
		}
	}
	return false
}

// resolverName says which resolver a lookup used.
func resolverName(r *net.Resolver) string {
	if r != nil && r != net.DefaultResolver {
		return "the configured resolver"
	}
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return "the system resolver"
	}
	if ns := parseNameservers(string(b)); len(ns) > 0 {
		return "the system resolver (/etc/hosts, then nameserver " + strings.Join(ns, ", ") + ")"
	}
	return "the system resolver (no nameserver in /etc/resolv.conf)"
}

func parseNameservers(conf string) []string {
	var out []string
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}
