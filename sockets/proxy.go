package sockets

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Forward is where a userland proxy sends the connections it accepts: it
// listens on Listen and, for each connection, connects to To and copies
// both ways. When To does not answer it closes the connection it accepted,
// which its clients see as "accepted, then closed".
type Forward struct {
	Proxy  string         `json:"proxy"` // its command: "docker-proxy", "socat"
	PID    int            `json:"pid"`
	Listen netip.AddrPort `json:"listen"`
	To     netip.AddrPort `json:"to"`
}

// IsProxy reports whether a process called comm (as Process.Command names
// it) may be a userland proxy whose command line ParseProxy reads.
func IsProxy(comm string) bool { return comm == "docker-proxy" || comm == "socat" }

// ProxyOf reads the command line of process pid and returns where it
// forwards, when it is a userland proxy ParseProxy knows.
func ProxyOf(pid int) (Forward, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return Forward{}, false
	}
	f, ok := ParseProxy(strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00"))
	f.PID = pid
	return f, ok
}

// ParseProxy reads a userland proxy's command line (argv, the program
// first) for where it listens and where it forwards:
//
//	docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80
//	socat TCP-LISTEN:8080,fork,reuseaddr TCP:172.17.0.2:80
//
// Flags may be given as -flag value, -flag=value or with two dashes. A
// proxy of another protocol than TCP, or one whose addresses are names or
// missing, is not recognised.
func ParseProxy(args []string) (Forward, bool) {
	if len(args) == 0 {
		return Forward{}, false
	}
	switch filepath.Base(args[0]) {
	case "docker-proxy":
		return parseDockerProxy(args[1:])
	case "socat":
		return parseSocat(args[1:])
	}
	return Forward{}, false
}

func parseDockerProxy(args []string) (Forward, bool) {
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "-")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		if n, v, ok := strings.Cut(name, "="); ok {
			flags[n] = v
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			flags[name] = args[i+1]
			i++
		} else {
			flags[name] = "" // a boolean flag: -use-listen-fd
		}
	}
	if p, ok := flags["proto"]; ok && p != "tcp" && p != "tcp4" && p != "tcp6" {
		return Forward{}, false
	}
	listen, ok1 := addrPort(flags["host-ip"], flags["host-port"])
	to, ok2 := addrPort(flags["container-ip"], flags["container-port"])
	if !ok1 || !ok2 {
		return Forward{}, false
	}
	return Forward{Proxy: "docker-proxy", Listen: listen, To: to}, true
}

func parseSocat(args []string) (Forward, bool) {
	var addrs []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) != 2 {
		return Forward{}, false
	}
	// TYPE:params,options; the listening side may come second.
	kind := func(a string) (string, string) {
		k, rest, _ := strings.Cut(a, ":")
		rest, _, _ = strings.Cut(rest, ",")
		return strings.ToUpper(k), rest
	}
	k0, r0 := kind(addrs[0])
	k1, r1 := kind(addrs[1])
	if !strings.HasPrefix(k0, "TCP") || !strings.HasSuffix(k0, "-LISTEN") && !strings.HasSuffix(k0, "-L") {
		k0, r0, k1, r1 = k1, r1, k0, r0
	}
	if k0 != "TCP-LISTEN" && k0 != "TCP4-LISTEN" && k0 != "TCP6-LISTEN" && k0 != "TCP-L" && k0 != "TCP4-L" {
		return Forward{}, false
	}
	if k1 != "TCP" && k1 != "TCP4" && k1 != "TCP6" && k1 != "TCP-CONNECT" && k1 != "TCP4-CONNECT" {
		return Forward{}, false
	}
	port, err := strconv.ParseUint(r0, 10, 16)
	if err != nil || port == 0 {
		return Forward{}, false
	}
	to, err := netip.ParseAddrPort(r1)
	if err != nil {
		i := strings.LastIndexByte(r1, ':')
		if i < 0 {
			return Forward{}, false
		}
		var ok bool
		if to, ok = addrPort(strings.Trim(r1[:i], "[]"), r1[i+1:]); !ok {
			return Forward{}, false
		}
	}
	if to.Port() == 0 {
		return Forward{}, false
	}
	any := netip.IPv4Unspecified()
	if k0 == "TCP6-LISTEN" {
		any = netip.IPv6Unspecified()
	}
	return Forward{Proxy: "socat", Listen: netip.AddrPortFrom(any, uint16(port)), To: to}, true
}

// addrPort joins an address and a port given apart; an empty address is
// the unspecified one.
func addrPort(addr, port string) (netip.AddrPort, bool) {
	a := netip.IPv4Unspecified()
	if addr != "" {
		var err error
		if a, err = netip.ParseAddr(addr); err != nil {
			return netip.AddrPort{}, false
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), true
}
