package netlab

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// ServeDNS runs an authoritative nameserver on UDP addr:53 inside h until t's
// test ends, and returns its address (for Resolver). It answers A and AAAA
// queries for the names in records (with or without the final dot, any
// case), NOERROR with no answer for the other family, and NXDOMAIN for every
// other name.
func (h *Host) ServeDNS(t testing.TB, addr netip.Addr, records map[string][]netip.Addr) netip.AddrPort {
	t.Helper()
	zone := make(map[string][]netip.Addr, len(records))
	for name, addrs := range records {
		zone[fqdn(name)] = addrs
	}
	pc := h.ListenPacket(t, "udp", netip.AddrPortFrom(addr, 53).String())
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			if resp, ok := answer(buf[:n], zone); ok {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return netip.AddrPortFrom(addr, 53)
}

func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// answer builds the response to one query; ok is false for garbage, which a
// real server would drop too.
func answer(query []byte, zone map[string][]netip.Addr) (resp []byte, ok bool) {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionDesired: hdr.RecursionDesired, RecursionAvailable: true},
		Questions: []dnsmessage.Question{q},
	}
	addrs, known := zone[strings.ToLower(q.Name.String())]
	if !known {
		m.Header.RCode = dnsmessage.RCodeNameError
	}
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case a.Is4() && q.Type == dnsmessage.TypeA:
			rh.Type = dnsmessage.TypeA
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: a.As4()}})
		case a.Is6() && q.Type == dnsmessage.TypeAAAA:
			rh.Type = dnsmessage.TypeAAAA
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	resp, err = m.Pack()
	return resp, err == nil
}
