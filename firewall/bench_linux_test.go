package firewall

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time this process has used (every thread: the
// garbage collector's too). The machines benchmarks run on are shared, and
// the wall clock counts the time other processes held the CPU.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// kubeHash is kube-proxy's chain-name hash (16 base32 characters of a
// SHA-256).
func kubeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// kubeNat writes the iptables-save of a kube-proxy (iptables mode) node
// with n Services of one port each, with 2 or 3 endpoints, every tenth a
// NodePort, as kube-proxy lays them out: the nat table's KUBE-SERVICES
// with a jump per Service, KUBE-SVC chains splitting at random to
// KUBE-SEP chains that DNAT, KUBE-NODEPORTS and KUBE-EXT chains, and
// the filter table it writes beside. It returns the ClusterIP of Service
// i and its endpoints.
func kubeNat(n int) (text string, clusterIP func(i int) netip.AddrPort, endpoints func(i int) int) {
	var nat, chains, filter strings.Builder
	clusterIP = func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(i%250 + 1)}), 80)
	}
	endpoints = func(i int) int { return 2 + i%2 }
	pod := 0
	chains.WriteString(":KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n")
	nat.WriteString(`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES` + "\n")
	nat.WriteString(`-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES` + "\n")
	nat.WriteString(`-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING` + "\n")
	nat.WriteString("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n")
	nat.WriteString("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n")
	nat.WriteString("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n")
	nat.WriteString(`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully` + "\n")
	for i := range n {
		name := fmt.Sprintf("ns%d/svc%d:http", i%50, i)
		svc := "KUBE-SVC-" + kubeHash(name+"tcp")
		cip := clusterIP(i)
		fmt.Fprintf(&chains, ":%s - [0:0]\n", svc)
		match := fmt.Sprintf(`-d %s/32 -p tcp -m comment --comment "%s cluster IP" -m tcp --dport 80`, cip.Addr(), name)
		fmt.Fprintf(&nat, "-A KUBE-SERVICES %s -j %s\n", match, svc)
		fmt.Fprintf(&nat, "-A %s ! -s 198.18.64.0/18 %s -j KUBE-MARK-MASQ\n", svc, match)
		if i%10 == 0 {
			ext := "KUBE-EXT-" + kubeHash(name+"tcp")
			fmt.Fprintf(&chains, ":%s - [0:0]\n", ext)
			fmt.Fprintf(&nat, `-A KUBE-NODEPORTS -p tcp -m comment --comment "%s" -m tcp --dport %d -j %s`+"\n", name, 30000+i/10, ext)
			fmt.Fprintf(&nat, `-A %s -m comment --comment "masquerade traffic for %s external destinations" -j KUBE-MARK-MASQ`+"\n", ext, name)
			fmt.Fprintf(&nat, "-A %s -j %s\n", ext, svc)
		}
		eps := endpoints(i)
		for j := range eps {
			addr := netip.AddrFrom4([4]byte{198, 18, byte(64 + pod/250), byte(pod%250 + 1)})
			pod++
			ep := netip.AddrPortFrom(addr, 8080).String()
			sep := "KUBE-SEP-" + kubeHash(name+"tcp"+ep)
			fmt.Fprintf(&chains, ":%s - [0:0]\n", sep)
			split := ""
			if j < eps-1 {
				split = fmt.Sprintf(" -m statistic --mode random --probability %.11f", 1/float64(eps-j))
			}
			fmt.Fprintf(&nat, `-A %s -m comment --comment "%s -> %s"%s -j %s`+"\n", svc, name, ep, split, sep)
			fmt.Fprintf(&nat, `-A %s -s %s/32 -m comment --comment "%s" -j KUBE-MARK-MASQ`+"\n", sep, addr, name)
			fmt.Fprintf(&nat, `-A %s -p tcp -m comment --comment "%s" -m tcp -j DNAT --to-destination %s`+"\n", sep, name, ep)
		}
	}
	nat.WriteString(`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS` + "\n")
	filter.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n")
	filter.WriteString(`-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES` + "\n")
	filter.WriteString(`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES` + "\n")
	filter.WriteString("COMMIT\n")
	text = filter.String() + "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		chains.String() + nat.String() + "COMMIT\n"
	return text, clusterIP, endpoints
}

// BenchmarkKube10k parses a kube-proxy nat table of 10,000 Services
// (about 140,000 lines) and walks a connection from the node to the last
// Service's ClusterIP (the last of 10,000 rules in KUBE-SERVICES), then
// the walk alone; cpu-ms/op is the CPU time they took. The goal:
// parse and walk in under a second.
//
//	go test -run '^$' -bench Kube10k -benchtime 5x ./firewall
func BenchmarkKube10k(b *testing.B) {
	const n = 10_000
	text, clusterIP, endpoints := kubeNat(n)
	b.Logf("%d Services: %d lines, %.1f MB", n, strings.Count(text, "\n"), float64(len(text))/1e6)
	host := Host{LocalAddrs: hostOnly}
	c := Conn{Local: true, Src: hostOnly[0].Addr(), Dst: clusterIP(n - 1)}
	check := func(b *testing.B, p *Path) {
		if len(p.Outcomes) != endpoints(n-1) || !p.Certain() {
			b.Fatalf("%d outcomes, certain %v: %v", len(p.Outcomes), p.Certain(), lines(p))
		}
	}
	b.Run("parse+walk", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		start := cpuTime(b)
		for b.Loop() {
			rs, err := ParseIptablesSave(text, "ip")
			if err != nil {
				b.Fatal(err)
			}
			check(b, Walk(rs, c, host))
		}
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e6, "cpu-ms/op")
	})
	b.Run("walk", func(b *testing.B) {
		rs, err := ParseIptablesSave(text, "ip")
		if err != nil {
			b.Fatal(err)
		}
		start := cpuTime(b)
		for b.Loop() {
			check(b, Walk(rs, c, host))
		}
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e6, "cpu-ms/op")
	})
}
