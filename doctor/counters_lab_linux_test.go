package doctor_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/kstat"
)

// finding returns the report's finding of cause c, failing the test without one.
func finding(t *testing.T, r *doctor.Report, c doctor.Cause) doctor.Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Cause == c {
			return f
		}
	}
	var b strings.Builder
	r.WriteText(&b, doctor.TextOptions{})
	t.Fatalf("no %s finding\n%s", c, b.String())
	return doctor.Finding{}
}

func checkRecord(r *doctor.Report, name string) doctor.CheckRecord {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return doctor.CheckRecord{}
}

// A listener with backlog 1 that never accepts, its queue full: on its
// host, the kernel's own count of the SYNs it dropped confirms overloaded,
// naming the listener's process.
func TestKernelCountsOverflows(t *testing.T) {
	p := newPair(t)
	port := fullBacklog(t, p)
	r := p.run(t, onServer, p.srvEP(port), quick, nil)
	check(t, r, want{cause: doctor.Overloaded, confidence: doctor.Confirmed, reachable: false})
	f := finding(t, r, doctor.Overloaded)
	m := regexp.MustCompile(`the kernel dropped (\d+) SYNs? to a full accept queue of doctor\.test \(pid \d+\) on 0\.0\.0\.0:` + strconv.Itoa(int(port)) +
		` during the probes \(TcpExt ListenOverflows \+(\d+), ListenDrops \+\d+ in network namespace net:\[\d+\]\)`).FindStringSubmatch(f.Evidence)
	if m == nil || m[1] == "0" || m[1] != m[2] {
		t.Errorf("evidence %q does not count the dropped SYNs", f.Evidence)
	}
	if !strings.Contains(f.Evidence, "waiting for accept, backlog 1") {
		t.Errorf("evidence %q lost the socket table's part", f.Evidence)
	}
	if c := checkRecord(r, "kernel"); c.Status != doctor.Fail || !strings.Contains(c.Detail, "TcpExt.ListenOverflows +") {
		t.Errorf("kernel check: %+v", c)
	}
}

// With every SYN answered by a cookie (tcp_syncookies 2), a healthy check
// says how many the kernel sent.
func TestKernelCountsSyncookies(t *testing.T) {
	p := newPair(t)
	p.srv.Sysctl(t, "net.ipv4.tcp_syncookies", "2")
	port := listenServe(t, p.srv, "tcp", net.JoinHostPort(p.srvAddr.String(), "0"))
	r := p.run(t, onServer, p.srvEP(port), quick, nil)
	check(t, r, want{cause: doctor.Reachable, confidence: doctor.Confirmed, reachable: true})
	if c := checkRecord(r, "kernel"); c.Status != doctor.Pass || !regexp.MustCompile(`TcpExt\.SyncookiesSent \+[1-9]\d* \([1-9]\d* SYN cookies? sent`).MatchString(c.Detail) {
		t.Errorf("kernel check: %+v", c)
	}
}

// The client's ephemeral ports towards the server all held: connect fails
// with EADDRNOTAVAIL, and the report names the range, the count and who
// holds them.
func TestKernelCountsEphemeralPorts(t *testing.T) {
	p := newPair(t)
	p.cli.Sysctl(t, "net.ipv4.ip_local_port_range", "40000 40009")
	port := listenServe(t, p.srv, "tcp", net.JoinHostPort(p.srvAddr.String(), "0"))
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := p.cli.DialContext(ctx, "tcp", p.srvEP(port))
		cancel()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	r := p.run(t, onClient, p.srvEP(port), quick, nil)
	check(t, r, want{cause: doctor.LocalError, confidence: doctor.Confirmed})
	f := finding(t, r, doctor.LocalError)
	want := fmt.Sprintf("all 10 ephemeral ports of net.ipv4.ip_local_port_range 40000-40009 that reach %s are taken: 10 sockets hold one (10 ESTABLISHED of doctor.test (pid ", p.srvEP(port))
	if !strings.Contains(f.Evidence, want) || !strings.Contains(f.Evidence, "cannot assign requested address") {
		t.Errorf("evidence %q\nwant %q", f.Evidence, want)
	}
	if f.Issue != "Ephemeral ports towards "+p.srvEP(port)+" are used up" || !strings.Contains(f.Fix, "reuse connections") {
		t.Errorf("issue %q, fix %q", f.Issue, f.Fix)
	}
}

// The client's conntrack table full of live flows: its SYNs are dropped
// before they leave, and the report says conntrack-full, with the count,
// the limit and the packets dropped.
func TestKernelCountsConntrackFull(t *testing.T) {
	p := newPair(t)
	port := listenServe(t, p.srv, "tcp", net.JoinHostPort(p.srvAddr.String(), "0"))
	p.cli.Iptables(t, "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	p.cli.FillConntrack(t)
	r := p.run(t, onClient, p.srvEP(port), quick, nil)
	check(t, r, want{cause: doctor.ConntrackFull, confidence: doctor.Confirmed})
	f := finding(t, r, doctor.ConntrackFull)
	if !regexp.MustCompile(`conntrack holds (\d+) of (\d+) entries in network namespace net:\[\d+\] .*, and the kernel dropped [1-9]\d* packets? for want of a free entry`).MatchString(f.Evidence) {
		t.Errorf("evidence %q", f.Evidence)
	}
	if r.Class != "timeout" {
		t.Errorf("class %s, want timeout", r.Class)
	}
}

// countingAgent is an agent that also serves its host's kernel counters.
type countingAgent struct{ agent }

func (a countingAgent) Counters(_ context.Context, _ netip.AddrPort) (kstat.Snapshot, error) {
	var s kstat.Snapshot
	err := a.h.Do(func() (err error) { s, err = kstat.Read(); return err })
	return s, err
}

// From the client, asking the server's agent: its kernel's counters, read
// before and after the probes, confirm a full accept queue there with the
// SYNs it dropped, and a full conntrack table there.
func TestKernelCountsViaAgent(t *testing.T) {
	run := func(t *testing.T, p *pair, ep string) *doctor.Report {
		t.Helper()
		e, err := endpoint.ParseEndpoint(ep, 0)
		if err != nil {
			t.Fatal(err)
		}
		return doctor.Run(context.Background(), e, doctor.Options{Timeout: quick, Dial: p.cli.DialContext, Enter: p.cli.Do,
			Remote: countingAgent{agent{p.srv}}})
	}
	t.Run("overloaded", func(t *testing.T) {
		p := newPair(t)
		port := fullBacklog(t, p)
		r := run(t, p, p.srvEP(port))
		check(t, r, want{cause: doctor.Overloaded, confidence: doctor.Confirmed})
		f := finding(t, r, doctor.Overloaded)
		if !regexp.MustCompile(`the kernel dropped [1-9]\d* SYNs? to a full accept queue of doctor\.test \(pid \d+\) on 0\.0\.0\.0:\d+ during the probes \(TcpExt ListenOverflows \+[1-9]\d*, ListenDrops \+\d+ in network namespace net:\[\d+\] of agent on ` + p.srv.Name()).MatchString(f.Evidence) {
			t.Errorf("evidence %q", f.Evidence)
		}
	})
	t.Run("conntrack-full", func(t *testing.T) {
		p := newPair(t)
		port := listenServe(t, p.srv, "tcp", net.JoinHostPort(p.srvAddr.String(), "0"))
		p.srv.Iptables(t, "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
		p.srv.FillConntrack(t)
		r := run(t, p, p.srvEP(port))
		check(t, r, want{cause: doctor.ConntrackFull, confidence: doctor.Confirmed})
		f := finding(t, r, doctor.ConntrackFull)
		if f.Issue != "The connection tracking table of the target host is full" ||
			!regexp.MustCompile(`conntrack holds \d+ of \d+ entries in network namespace net:\[\d+\] of agent on `+p.srv.Name()+` .*the kernel dropped [1-9]\d* packets?`).MatchString(f.Evidence) {
			t.Errorf("issue %q, evidence %q", f.Issue, f.Evidence)
		}
	})
}
