package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reach-tools/reach/probe"
	"github.com/reach-tools/reach/sockets"
)

// SocketsCheck compares the target host's listening sockets with the address
// dialled: nothing listening, another port, loopback or one family only, a
// stopped owner, a full accept queue.
var SocketsCheck = CheckFunc{
	CheckName: "sockets",
	ReadsFrom: []string{"dns", "tcp", "host"}, // addresses; classes; the hosts' sockets
	Fn:        checkSockets,
}

func checkSockets(ctx context.Context, s *State) CheckResult {
	if r, ok := needAddrs(s); !ok {
		return r
	}
	res := CheckResult{Status: Pass}
	var parts []string
	for i := range s.Addrs {
		h := s.host(i)
		if h == nil {
			continue
		}
		label := s.prefix(i)
		if h.Listening == nil {
			res.Status = Error
			parts = append(parts, label+"could not list sockets on "+h.Host+": "+strings.Join(h.Notes, "; "))
			continue
		}
		detail, fs := judgeSockets(h, s.addrPort(i), s.Primary(i), h == s.Client)
		for j := range fs {
			fs[j].Addr = s.label(i)
			if h != s.Client {
				fs[j].Evidence += " (reported by " + h.Host + ")"
			}
		}
		parts = append(parts, label+detail)
		if len(fs) > 0 && res.Status == Pass {
			res.Status = Fail
		}
		res.Findings = append(res.Findings, fs...)
	}
	if len(parts) == 0 {
		return CheckResult{Status: Skip, Detail: "the target is another host: its sockets cannot be seen from here"}
	}
	res.Detail = strings.Join(parts, "; ")
	return res
}

// judgeSockets is analyzeSockets where the evidence past the host's own
// sockets allows it: not when its rules or a proxy send the connection
// elsewhere (the nat check says where), and with the confidence lowered
// when a rule could, or a container may hold the server.
func judgeSockets(ev *HostEvidence, ap netip.AddrPort, class probe.Class, local bool) (string, []Finding) {
	detail, fs := analyzeSockets(ev, ap, class)
	v := examine(ev, ap, class, local)
	if !v.host {
		return detail + " (not where the connection goes: see nat)", nil
	}
	for j := range fs {
		fs[j] = v.capped(fs[j])
	}
	if class == probe.Refused && len(fs) == 0 && v.capAll != "" {
		// A listener takes the address, yet the host refused: a rule the
		// doctor could not read rejects or translates the connection.
		for _, sk := range ev.Listening {
			if sk.Local.Port() == ap.Port() && accepts(sk, ap.Addr()) {
				fs = append(fs, Finding{Cause: FirewallReject, Confidence: Possible, settles: true,
					Issue:    fmt.Sprintf("Something listens on port %d, yet the connection is refused before it arrives: a rule rejects or redirects it", ap.Port()),
					Evidence: fmt.Sprintf("%s listens on %s, yet %s was answered with a reset; %s", sk.Owner(), sk.Local, ap, v.capAllWhy),
					Fix:      fmt.Sprintf("run reach check %s as root on %s: it reads and walks the nat and filter rules (or read iptables-save and nft list ruleset)", ap, ev.Host)})
				break
			}
		}
	}
	return detail, fs
}

// accepts reports whether listener sk takes connections to dst on its own
// port (the port is compared by the callers).
func accepts(sk sockets.Socket, dst netip.Addr) bool {
	return sk.Accepts(netip.AddrPortFrom(dst, sk.Local.Port()))
}

// analyzeSockets compares a host's listening sockets with the address
// dialled and what the probe saw.
func analyzeSockets(ev *HostEvidence, ap netip.AddrPort, class probe.Class) (string, []Finding) {
	where := ev.Host
	port := ap.Port()
	var onPort []sockets.Socket
	for _, sk := range ev.Listening {
		if sk.Local.Port() == port {
			onPort = append(onPort, sk)
		}
	}
	var taking []sockets.Socket
	for _, sk := range onPort {
		if accepts(sk, ap.Addr()) {
			taking = append(taking, sk)
		}
	}
	if len(onPort) == 0 {
		looked := fmt.Sprintf("nothing listens on port %d on %s (%s)", port, where, tableSource(ev))
		if near, ok := nearbyPort(ev.Listening, ap, port); ok {
			return looked + fmt.Sprintf("; %s listens on %s", near.Owner(), near.Local), []Finding{{
				// Nothing on the port is certain; that the nearby listener is
				// the one meant is a guess, hence likely, with both fixes.
				Cause: WrongPort, Confidence: Likely,
				Issue:    fmt.Sprintf("Wrong port? Nothing listens on %d; the server on %d may be the one meant", port, near.Local.Port()),
				Evidence: fmt.Sprintf("nothing listens on port %d; %s listens on %s", port, near.Owner(), near.Local),
				Fix:      fmt.Sprintf("connect to port %d, or configure the server to listen on %d and restart it; if it is another service, start the server that should listen on %d", near.Local.Port(), port, port),
			}}
		}
		if class == probe.Open {
			return looked + ", yet the probe connected (a proxy or NAT answers?)", nil
		}
		return looked, []Finding{{
			Cause: NotListening, Confidence: Confirmed,
			Issue:    fmt.Sprintf("Nothing listens on port %d", port),
			Evidence: looked,
			Fix:      fmt.Sprintf("start the server that should listen on port %d (systemctl status / its logs say why it is down or failed to bind)", port),
		}}
	}
	desc := describeListeners(onPort)
	if len(taking) == 0 {
		f := Finding{Confidence: Confirmed, Evidence: fmt.Sprintf("%s; you dialled %s", desc, ap)}
		allLoop, allOtherFamily := true, true
		for _, sk := range onPort {
			a := sk.Local.Addr().Unmap()
			allLoop = allLoop && a.IsLoopback()
			otherFamily := a.Is4() != ap.Addr().Unmap().Is4() || (sk.V6Only && ap.Addr().Unmap().Is4())
			allOtherFamily = allOtherFamily && otherFamily
		}
		switch {
		case allLoop && !ap.Addr().IsLoopback():
			f.Cause, f.Issue = LoopbackOnly, "Server bound to loopback only"
			f.Fix = fmt.Sprintf("set the listen address to 0.0.0.0 (or %s) and restart; or connect from this host to %s", ap.Addr(), onPort[0].Local)
		case allOtherFamily:
			fam := "IPv6"
			if !ap.Addr().Unmap().Is4() {
				fam = "IPv4"
			}
			f.Cause, f.Issue = AddressFamilyMismatch, fmt.Sprintf("Server listens on %s only", fam)
			f.Fix = fmt.Sprintf("make it listen on both families (e.g. [::] with IPV6_V6ONLY off, or 0.0.0.0 as well), or connect to its %s address", fam)
			if fam == "IPv6" && onPort[0].V6Only {
				f.Evidence += " (the socket is IPv6-only: IPV6_V6ONLY, or net.ipv6.bindv6only=1)"
			}
		default:
			f.Cause, f.Issue = NotListening, "Server listens on another address of this host"
			f.Fix = fmt.Sprintf("set its listen address to %s (or 0.0.0.0) and restart, or connect to the address it listens on", ap.Addr())
		}
		return desc, []Finding{f}
	}
	// Something takes the connection: is it able to?
	var fs []Finding
	if class == probe.Reset || class == probe.ClosedByPeer {
		cause := map[probe.Class]Cause{probe.Reset: ResetByPeer, probe.ClosedByPeer: ClosedByPeer}[class]
		fs = append(fs, Finding{Cause: cause, Confidence: Confirmed,
			Issue:    "The server accepts the connection, then drops it",
			Evidence: fmt.Sprintf("%s holds the listening socket: its logs say why it drops the connection", taking[0].Owner()),
			Fix:      fmt.Sprintf("look at the logs of %s for why it drops connections from this client", taking[0].Owner())})
	}
	for _, sk := range taking {
		if sk.ProcessState == "stopped" || sk.ProcessState == "tracing-stop" {
			fs = append(fs, Finding{Cause: ServerHung, Confidence: Confirmed,
				Issue:    "Server process is stopped",
				Evidence: fmt.Sprintf("%s holds %s but is stopped (state T); the kernel completes handshakes, nothing accepts (accept queue %d of %d)", sk.Owner(), sk.Local, sk.RecvQ, sk.SendQ),
				Fix:      fmt.Sprintf("resume it (kill -CONT %s) or restart it; find what stopped it (a debugger, Ctrl-Z in a shell, a supervisor)", pids(sk)),
			})
			continue
		}
		if sk.SendQ > 0 && sk.RecvQ > sk.SendQ {
			fs = append(fs, Finding{Cause: Overloaded, Confidence: Confirmed,
				Issue:    "Server's accept queue is full",
				Evidence: fmt.Sprintf("%s on %s has %d connections waiting for accept, backlog %d: new SYNs are dropped", sk.Owner(), sk.Local, sk.RecvQ, sk.SendQ),
				Fix:      "the server does not accept fast enough: look for a stuck accept loop or exhausted workers; raise the listen backlog (and net.core.somaxconn) only if it is merely bursty",
			})
		}
	}
	return desc, fs
}

func pids(sk sockets.Socket) string {
	var p []string
	for _, pr := range sk.Processes {
		p = append(p, strconv.Itoa(pr.PID))
	}
	if len(p) == 0 {
		return "PID"
	}
	return strings.Join(p, " ")
}

func describeListeners(ss []sockets.Socket) string {
	var parts []string
	for _, sk := range ss {
		d := fmt.Sprintf("%s listens on %s", sk.Owner(), sk.Local)
		var extra []string
		if sk.SendQ > 0 {
			extra = append(extra, fmt.Sprintf("accept queue %d of %d", sk.RecvQ, sk.SendQ))
		}
		if sk.ProcessState != "" {
			extra = append(extra, sk.ProcessState)
		}
		if len(extra) > 0 {
			d += " (" + strings.Join(extra, ", ") + ")"
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, "; ")
}

// nearbyPort finds a listener that takes dst's address on a port that looks
// like a slip of port: within 10, its digits swapped, or a digit more or less.
func nearbyPort(ls []sockets.Socket, ap netip.AddrPort, port uint16) (sockets.Socket, bool) {
	var best sockets.Socket
	bestDist := -1
	for _, sk := range ls {
		p := sk.Local.Port()
		if !accepts(sk, ap.Addr()) || !similarPort(p, port) {
			continue
		}
		d := int(p) - int(port)
		if d < 0 {
			d = -d
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = sk, d
		}
	}
	return best, bestDist >= 0
}

func similarPort(a, b uint16) bool {
	if a == b {
		return false
	}
	if d := int(a) - int(b); d >= -10 && d <= 10 {
		return true
	}
	sa, sb := strconv.Itoa(int(a)), strconv.Itoa(int(b))
	if len(sa) == len(sb) {
		ra, rb := []byte(sa), []byte(sb)
		slices.Sort(ra)
		slices.Sort(rb)
		return string(ra) == string(rb)
	}
	// One digit added or dropped: 8080 vs 80800, 5432 vs 54320.
	long, short := sa, sb
	if len(long) < len(short) {
		long, short = short, long
	}
	if len(long) != len(short)+1 {
		return false
	}
	for i := range long {
		if long[:i]+long[i+1:] == short {
			return true
		}
	}
	return false
}

// tableSource says how the socket table was read, for evidence.
func tableSource(ev *HostEvidence) string {
	if ev.Host == "this host" {
		return "per its socket table"
	}
	return "per the socket table it sent"
}
