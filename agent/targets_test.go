package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/probe"
)

func TestForbidden(t *testing.T) {
	for addr, want := range map[string]string{
		"169.254.169.254": "link-local", "169.254.0.1": "link-local", "fe80::1": "link-local",
		"0.0.0.0": "unspecified", "::": "unspecified", "::ffff:0.0.0.0": "unspecified",
		"255.255.255.255": "broadcast", "224.0.0.1": "multicast", "239.1.2.3": "multicast",
		"ff02::1": "multicast", "::ffff:169.254.169.254": "link-local",
		"127.0.0.1": "", "198.18.0.1": "", "::1": "", "fd00::1": "", "255.255.255.254": "", "169.253.0.1": "",
	} {
		if got := Forbidden(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Forbidden(%s) = %q, want %q", addr, got, want)
		}
	}
}

// A hub's list that points an agent at link-local, unspecified, broadcast
// and multicast addresses gets each refused before any socket exists: the
// dial function never sees them, and the hub gets a local-error result for
// each that says why and how to allow it. A loopback target in the same
// list is probed. With --allow-targets (Config.AllowTargets) covering them,
// they are probed too. (Before, an agent probed whatever a hub sent.)
func TestHostileHubTargets(t *testing.T) {
	hostile := []string{"169.254.169.254:80", "0.0.0.0:22", "255.255.255.255:1", "224.0.0.1:80", "[fe80::1]:80"}
	fine := "127.0.0.1:9"
	all := []netip.AddrPort{netip.MustParseAddrPort(fine)}
	for _, s := range hostile {
		all = append(all, netip.MustParseAddrPort(s))
	}
	for _, tc := range []struct {
		name  string
		allow []netip.Prefix
	}{
		{"refused", nil},
		{"allowed", []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("0.0.0.0/32"),
			netip.MustParsePrefix("255.255.255.255/32"), netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("fe80::/10")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pl := ProbeList{Agent: "a", Interval: Duration(time.Second), Timeout: Duration(time.Second)}
				for _, ap := range all {
					pl.Targets = append(pl.Targets, Target{ID: ap.String(), Addr: ap})
				}
				hc, hub := memHub(pl)
				var mu sync.Mutex
				var dialled []string
				got := map[string]Result{}
				var log testnet.Buffer
				a, err := New(Config{Name: "a", Hub: "http://hub.invalid", Token: testToken, HTTPClient: hc,
					ReportEvery: 500 * time.Millisecond, NoNetWatch: true, AllowTargets: tc.allow, Logger: slog.New(slog.NewTextHandler(&log, nil)),
					// A fake: nothing here ever connects, refused or not.
					Dial: func(_ context.Context, _, address string) (net.Conn, error) {
						mu.Lock()
						dialled = append(dialled, address)
						mu.Unlock()
						return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
					}})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- a.Run(ctx) }()
				time.Sleep(2500 * time.Millisecond)
				synctest.Wait()
				for _, r := range hub.all() {
					got[r.Target] = r
				}
				body := get(t, a.Handler(), PathMetrics, testToken, http.StatusOK)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if !slices.Contains(dialled, fine) {
					t.Errorf("the loopback target was not probed; dialled %v", dialled)
				}
				for _, h := range hostile {
					r, ok := got[h]
					switch {
					case !ok:
						t.Errorf("%s: no result reported to the hub", h)
					case tc.allow == nil && slices.Contains(dialled, h):
						t.Errorf("%s: dialled, want refused before any socket", h)
					case tc.allow == nil && (r.Class != probe.LocalError || !strings.Contains(r.Error, "refused to probe "+h) ||
						!strings.Contains(r.Error, "--allow-targets")):
						t.Errorf("%s: reported %s %q, want local-error saying it was refused and how to allow it", h, r.Class, r.Error)
					case tc.allow != nil && (!slices.Contains(dialled, h) || r.Class != probe.Refused):
						t.Errorf("%s allowed: dialled %v, reported %s; want probed", h, slices.Contains(dialled, h), r.Class)
					}
				}
				wantRefused := `reach_agent_targets_refused{source="a"} 5`
				if tc.allow != nil {
					wantRefused = `reach_agent_targets_refused{source="a"} 0`
				}
				if !strings.Contains(body, wantRefused) {
					t.Errorf("/metrics lacks %s", wantRefused)
				}
				if warned := strings.Contains(log.String(), "refusing targets the hub sent"); warned != (tc.allow == nil) {
					t.Errorf("warning logged: %v, want %v\n%s", warned, tc.allow == nil, log.String())
				}
			})
		})
	}
	var te *TargetError
	err := checkTarget(netip.MustParseAddrPort("[::ffff:169.254.169.254]:80"), nil)
	if !errors.As(err, &te) || !errors.Is(err, ErrTargetRefused) || te.Kind != "link-local" ||
		!strings.Contains(err.Error(), "--allow-targets 169.254.169.254/32") {
		t.Errorf("mapped metadata address: %v", err)
	}
}
