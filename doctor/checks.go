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
	"sync"
	"syscall"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/sys"
	"github.com/reach-tools/reach/probe"
)

// maxAddrs bounds how many addresses of a name are probed.
const maxAddrs = 8

// readWait is how long a probe waits after connecting for a reset or close.
const readWait = 100 * time.Millisecond

// DNSCheck resolves the target's name to every A and AAAA address (capped at
// 8), saying which resolver answered and how long it took.
var DNSCheck = CheckFunc{"dns", func(ctx context.Context, s *State) CheckResult {
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
}}

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

func unwrapProbe(err error) error {
	var pe *probe.Error
	if errors.As(err, &pe) && pe.Err != nil {
		return pe.Err
	}
	return err
}

func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// each runs fn(0) .. fn(n-1) concurrently and waits for them all.
func each(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

func (s *State) addrPort(i int) netip.AddrPort { return netip.AddrPortFrom(s.Addrs[i], s.Target.Port) }

// label names address i in findings when the target has several.
func (s *State) label(i int) string {
	if len(s.Addrs) > 1 {
		return s.addrPort(i).String()
	}
	return ""
}

// host returns the evidence of address i's host, nil when none was seen.
func (s *State) host(i int) *HostEvidence {
	if i < len(s.Hosts) {
		return s.Hosts[i]
	}
	return nil
}

func needAddrs(s *State) (CheckResult, bool) {
	if len(s.Addrs) == 0 {
		return CheckResult{Status: Skip, Detail: "no address to look at: the name did not resolve"}, false
	}
	return CheckResult{}, true
}

// TCPCheck probes each address a few times, to tell a steady failure from
// an intermittent one; a probe that connects waits briefly for a reset or close.
var TCPCheck = CheckFunc{"tcp", func(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	n := s.Options.Probes
	if n <= 0 {
		n = 3
	}
	s.Probes = make([][]probe.Result, len(s.Addrs))
	opt := probe.Options{Timeout: s.Options.timeout(), Dial: s.Options.Dial, ReadWait: readWait}
	each(len(s.Addrs), func(i int) {
		for range n {
			r := probe.Run(ctx, endpoint.FromAddrPort(s.addrPort(i)), opt)
			s.Probes[i] = append(s.Probes[i], r)
			// A slow answer is steady enough; repeating it would blow the budget.
			if r.Class == probe.Timeout || r.Class == probe.Canceled || r.RTT > opt.Timeout/4 || ctx.Err() != nil {
				break
			}
		}
	})
	res := CheckResult{Status: Pass}
	var parts []string
	for i := range s.Addrs {
		parts = append(parts, describeProbes(s.addrPort(i), s.Probes[i]))
		c := s.Primary(i)
		if c != probe.Open {
			res.Status = Fail
		}
		res.Findings = append(res.Findings, classFindings(s, i, c)...)
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}}

// describeProbes says "198.18.0.2:80 refused ×3 (steady) in 0.12ms".
func describeProbes(ap netip.AddrPort, rs []probe.Result) string {
	counts := map[probe.Class]int{}
	var order []probe.Class
	for _, r := range rs {
		if counts[r.Class] == 0 {
			order = append(order, r.Class)
		}
		counts[r.Class]++
	}
	var parts []string
	for _, c := range order {
		parts = append(parts, fmt.Sprintf("%s ×%d", c, counts[c]))
	}
	what := "steady"
	if len(order) > 1 {
		what = "intermittent"
	} else if len(rs) == 1 {
		what = "one probe"
	}
	return fmt.Sprintf("%s %s (%s) in %s", ap, strings.Join(parts, ", "), what, round(rs[0].RTT))
}

// classFindings are the findings a probe class proves on its own.
func classFindings(s *State, i int, c probe.Class) []Finding {
	ap := s.addrPort(i)
	var err error
	for _, r := range s.Probes[i] {
		if r.Class == c && r.Err != nil {
			err = unwrapProbe(r.Err)
			break
		}
	}
	switch c {
	case probe.Reset:
		return []Finding{{Cause: ResetByPeer, Confidence: Confirmed, Addr: s.label(i),
			Issue:    "The server accepts the connection, then resets it",
			Evidence: fmt.Sprintf("the handshake with %s completed, then an RST came before any data: %v", ap, err),
			Fix:      "look at the server's logs: it crashes, rejects this client (access control, TLS mismatch, connection limit), or closes with SO_LINGER 0"}}
	case probe.ClosedByPeer:
		return []Finding{{Cause: ClosedByPeer, Confidence: Confirmed, Addr: s.label(i),
			Issue:    "The server accepts the connection, then closes it",
			Evidence: fmt.Sprintf("the handshake with %s completed, then the server closed (EOF) within %v without sending anything", ap, readWait),
			Fix:      "look at the server's logs: it refuses this client (allow-list, connection limit, tcp wrappers) or exits on accept; a proxy in front may have no healthy backend"}}
	case probe.NetUnreachable:
		return []Finding{{Cause: NoRoute, Confidence: Confirmed, Addr: s.label(i),
			Issue:    fmt.Sprintf("This host has no route to %s", ap.Addr()),
			Evidence: fmt.Sprintf("connect to %s failed at once: %v", ap, err),
			Fix:      "add a route to that network (or a default route), or bring the interface up; see the route check"}}
	case probe.LocalError:
		return []Finding{localErrorFinding(s, i, err)}
	}
	return nil
}

func localErrorFinding(s *State, i int, err error) Finding {
	f := Finding{Cause: LocalError, Confidence: Confirmed, Addr: s.label(i),
		Issue:    "This host fails before anything reaches the network",
		Evidence: fmt.Sprintf("connect to %s: %v", s.addrPort(i), err),
		Fix:      "see the evidence: raise the file limit (ulimit -n), widen net.ipv4.ip_local_port_range, or remove the local OUTPUT firewall rule"}
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		f.Issue = "This host's own firewall forbids the connection"
		f.Fix = "remove or narrow the OUTPUT rule that drops it (see the firewall check)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		f.Issue = "This process is out of file descriptors"
		f.Fix = "raise the limit (ulimit -n, LimitNOFILE=) or find the descriptor leak"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		f.Issue = "No local port or source address is available"
		f.Fix = "widen net.ipv4.ip_local_port_range, reuse connections, or check the source address exists"
	}
	return f
}

// RouteCheck asks the kernel how it would route to each address (ip route get).
var RouteCheck = CheckFunc{"route", func(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	s.Routes = make([]RouteInfo, len(s.Addrs))
	each(len(s.Addrs), func(i int) {
		s.Options.enter(func() error {
			r, err := sys.RouteGet(ctx, s.Addrs[i])
			s.Routes[i] = RouteInfo{Route: r, Err: err}
			if ifc, err := net.InterfaceByIndex(r.IfIndex); r.IfIndex != 0 && err == nil {
				s.Routes[i].Dev = ifc.Name
			}
			return nil
		})
	})
	res := CheckResult{Status: Pass}
	var parts []string
	for i, ri := range s.Routes {
		if errors.Is(ri.Err, sys.ErrUnsupported) {
			return CheckResult{Status: Skip, Detail: "route lookup is not supported on this OS"}
		}
		parts = append(parts, describeRoute(s, ri))
		if ri.Err == nil {
			continue
		}
		res.Status = Fail
		var errno syscall.Errno
		if !errors.As(ri.Err, &errno) {
			res.Status = Error
			continue
		}
		f := Finding{Cause: NoRoute, Confidence: Confirmed, Addr: s.label(i),
			Issue: fmt.Sprintf("This host has no route to %s", s.Addrs[i])}
		switch ri.Route.Type {
		case "unreachable", "blackhole", "prohibit":
			f.Evidence = fmt.Sprintf("the routing table has %q for %s (ip route get: %v)", ri.Route.Type+" "+ri.Route.Prefix.String(), s.Addrs[i], errno)
			f.Fix = fmt.Sprintf("remove that route (ip route del %s %s) or add a more specific one via a gateway", ri.Route.Type, ri.Route.Prefix)
		default:
			f.Evidence = fmt.Sprintf("ip route get %s: %v; no table entry (and no default route) covers it", s.Addrs[i], errno)
			f.Fix = fmt.Sprintf("add a route (ip route add %s via GATEWAY) or a default route; check the interface is up", netip.PrefixFrom(s.Addrs[i], s.Addrs[i].BitLen()))
		}
		res.Findings = append(res.Findings, f)
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}}

func describeRoute(s *State, ri RouteInfo) string {
	r := ri.Route
	if ri.Err != nil {
		var errno syscall.Errno
		errors.As(ri.Err, &errno)
		if r.Type != "" {
			return fmt.Sprintf("%s: the routing table has %s %s (%v)", r.Dst, r.Type, r.Prefix, errno)
		}
		if errno != 0 {
			return fmt.Sprintf("%s: no route (%v)", r.Dst, errno)
		}
		return fmt.Sprintf("%s: %v", r.Dst, ri.Err)
	}
	dev := ri.Dev
	if dev == "" {
		dev = fmt.Sprintf("#%d", r.IfIndex)
	}
	switch {
	case r.Type == "local":
		return fmt.Sprintf("%s is this host (dev %s)", r.Dst, dev)
	case r.Gateway.IsValid():
		return fmt.Sprintf("%s via %s dev %s src %s (route %s)", r.Dst, r.Gateway, dev, r.Src, r.Prefix)
	}
	return fmt.Sprintf("%s dev %s src %s (on-link, route %s)", r.Dst, dev, r.Src, r.Prefix)
}

// ICMPCheck sends one echo request to each address, or says why it cannot.
var ICMPCheck = CheckFunc{"icmp", func(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	s.Echo = make([]EchoInfo, len(s.Addrs))
	wait := min(s.Options.timeout(), time.Second)
	each(len(s.Addrs), func(i int) {
		s.Options.enter(func() error {
			s.Echo[i] = echo(ctx, s.Addrs[i], wait)
			return nil
		})
	})
	res := CheckResult{Status: Pass}
	var parts []string
	for i, e := range s.Echo {
		switch {
		case e.Skipped != "":
			res.Status = Skip
			parts = append(parts, "skipped: "+e.Skipped)
		case errors.Is(e.Err, syscall.ENETUNREACH) || errors.Is(e.Err, syscall.EHOSTUNREACH):
			if res.Status == Pass {
				res.Status = Info
			}
			var errno syscall.Errno
			errors.As(e.Err, &errno)
			parts = append(parts, fmt.Sprintf("no echo sent to %s: %v", s.Addrs[i], errno))
		case e.Err != nil:
			res.Status = Error
			parts = append(parts, fmt.Sprintf("echo to %s: %v", s.Addrs[i], e.Err))
		case e.Replied:
			parts = append(parts, fmt.Sprintf("echo reply from %s in %s (%s)", s.Addrs[i], round(e.RTT), e.Socket))
		default:
			if res.Status == Pass {
				res.Status = Info
			}
			parts = append(parts, fmt.Sprintf("no echo reply from %s within %v (many hosts drop ping)", s.Addrs[i], wait))
		}
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}}
