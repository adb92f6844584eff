package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// TCPCheck probes each address a few times, to tell a steady failure from
// an intermittent one; a probe that connects waits briefly for a reset or close.
var TCPCheck = CheckFunc{
	CheckName: "tcp",
	ReadsFrom: []string{"dns"}, // the addresses
	Fn:        checkTCP,
}

func checkTCP(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	n := s.Options.Probes
	if n <= 0 {
		n = 3
	}
	s.Probes = make([][]probe.Result, len(s.Addrs))
	opt := probe.Options{Timeout: s.Options.timeout(), Dial: s.Options.Dial, ReadWait: readWait,
		Source: s.Options.Source, Interface: s.Options.Interface}
	s.Hold = startHold(s, opt)
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
}

// readWait is how long a probe waits after connecting for a reset or close.
const readWait = 100 * time.Millisecond

func unwrapProbe(err error) error {
	var pe *probe.Error
	if errors.As(err, &pe) && pe.Err != nil {
		return pe.Err
	}
	return err
}

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
	d := fmt.Sprintf("%s %s (%s) in %s", ap, strings.Join(parts, ", "), what, round(rs[0].RTT))
	for _, r := range rs {
		if r.ICMP != nil {
			return d + " by " + r.ICMP.String()
		}
	}
	return d
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
