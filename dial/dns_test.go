package dial

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// serveDNS answers A queries for names in zone from pc until the test ends;
// other names get NXDOMAIN. It lets tests resolve a name to several
// addresses without leaving the machine (or the lab).
func serveDNS(t testing.TB, pc net.PacketConn, zone map[string][]netip.Addr) {
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, ok := dnsAnswer(buf[:n], zone); ok {
				pc.WriteTo(resp, from)
			}
		}
	}()
}

func dnsAnswer(query []byte, zone map[string][]netip.Addr) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	addrs, known := zone[strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	for _, a := range addrs {
		res := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			b.AResource(res, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			b.AAAAResource(res, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// loopbackResolver resolves through a DNS server on 127.0.0.1 serving zone.
func loopbackResolver(t testing.TB, zone map[string][]netip.Addr) *net.Resolver {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveDNS(t, pc, zone)
	ns := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ns)
	}}
}

// switchingResolver resolves through one of two loopback DNS servers, the
// second once switch is called: a name whose addresses change.
func switchingResolver(t testing.TB, before, after map[string][]netip.Addr) (res *net.Resolver, switchZone func()) {
	var servers [2]string
	for i, zone := range []map[string][]netip.Addr{before, after} {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveDNS(t, pc, zone)
		servers[i] = pc.LocalAddr().String()
	}
	var which atomic.Int32
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, servers[which.Load()])
	}}, func() { which.Store(1) }
}
