package dial_test

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/reach-tools/reach/dial"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/internal/netlab"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

// The client has two addresses on its link; the server resets connections
// from any but the second. The Dialer's Source decides, and a source this
// host lacks ends the dial at once (a local error is not retried) with the
// probe's *SourceError.
func TestSourceInLab(t *testing.T) {
	netlab.Require(t)
	lab := netlab.New(t)
	p := lab.Pair()
	second := p.Client.AddAddr(t, p.ClientAddr)
	ln := p.Server.Listen(t, "tcp", netip.AddrPortFrom(p.ServerAddr, 0).String())
	ep := endpoint.FromAddrPort(testnet.ServeOn(t, ln, testnet.HangUp))
	p.Server.Iptables(t, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(ep.Port)), "!", "-s", second.String(), "-j", "REJECT", "--reject-with", "tcp-reset")

	dialIn := func(opt dial.Options) (net.Conn, error) {
		opt.Timeout = 5 * time.Second
		d := dial.New([]endpoint.Endpoint{ep}, opt)
		defer d.Close()
		var conn net.Conn
		var err error
		p.Client.Do(func() error { conn, err = d.DialContext(t.Context()); return nil })
		return conn, err
	}
	if _, err := dialIn(dial.Options{}); !errors.Is(err, probe.Refused) {
		t.Fatalf("from the first address: %v, want refused", err)
	}
	conn, err := dialIn(dial.Options{Source: second})
	if err != nil {
		t.Fatalf("from %v: %v", second, err)
	}
	if got := conn.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != second {
		t.Errorf("left from %v, want %v", got, second)
	}
	conn.Close()

	_, err = dialIn(dial.Options{Source: netip.MustParseAddr("198.18.0.9"), Retries: 3})
	var de *dial.Error
	var se *probe.SourceError
	if !errors.As(err, &de) || de.Attempts != 1 || !errors.As(err, &se) || !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("from a stranger: %v; want one attempt failing with a *probe.SourceError", err)
	}
}
