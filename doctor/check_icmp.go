package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ICMPCheck sends one echo request to each address, or says why it cannot.
var ICMPCheck = CheckFunc{
	CheckName: "icmp",
	ReadsFrom: []string{"dns"}, // the addresses
	Fn:        checkICMP,
}

func checkICMP(ctx context.Context, s *State) CheckResult {
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
}

// echo sends one ICMP echo request to addr and waits up to wait for the
// reply. It uses an unprivileged ICMP socket when net.ipv4.ping_group_range
// allows, a raw socket with CAP_NET_RAW, and otherwise says why it skipped.
func echo(ctx context.Context, addr netip.Addr, wait time.Duration) EchoInfo {
	network, raw, proto := "udp4", "ip4:icmp", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	listenOn := "0.0.0.0"
	if addr.Is6() {
		network, raw, proto = "udp6", "ip6:ipv6-icmp", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
		listenOn = "::"
	}
	conn, err := icmp.ListenPacket(network, listenOn)
	privileged := false
	if err != nil {
		var rerr error
		conn, rerr = icmp.ListenPacket(raw, listenOn)
		if rerr != nil {
			if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(rerr, syscall.EPERM) {
				return EchoInfo{Skipped: fmt.Sprintf("no ICMP socket allowed: group %d is outside net.ipv4.ping_group_range (%s) and there is no CAP_NET_RAW", os.Getegid(), pingGroupRange())}
			}
			return EchoInfo{Skipped: fmt.Sprintf("no ICMP socket: %v; raw: %v", err, rerr)}
		}
		privileged = true
	}
	defer conn.Close()
	kind := "unprivileged ICMP socket"
	if privileged {
		kind = "raw socket"
	}

	id := os.Getpid() & 0xffff
	seq := int(time.Now().UnixNano() & 0x7fff)
	msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("reach doctor")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return EchoInfo{Socket: kind, Err: err}
	}
	var dst net.Addr = &net.UDPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	if privileged {
		dst = &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	start := time.Now()
	if _, err := conn.WriteTo(b, dst); err != nil {
		return EchoInfo{Socket: kind, Err: fmt.Errorf("send: %w", err)}
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return EchoInfo{Socket: kind} // no reply in time
			}
			return EchoInfo{Socket: kind, Err: fmt.Errorf("receive: %w", err)}
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != replyType {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		// Unprivileged sockets rewrite the id to their port; the kernel
		// already delivers only our replies there.
		if !ok || e.Seq != seq || (privileged && (e.ID != id || !sameIP(from, addr))) {
			continue
		}
		return EchoInfo{Socket: kind, Replied: true, RTT: time.Since(start)}
	}
}

func sameIP(a net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch v := a.(type) {
	case *net.IPAddr:
		ip = v.IP
	case *net.UDPAddr:
		ip = v.IP
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == want.Unmap()
}

func pingGroupRange() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
