package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/kstat"
)

// The agent serves its namespace's kernel counters, directly and found
// through the hub; a bad address is refused, and a hub without the agent's
// URL says so as the evidence query does.
func TestAgentCounters(t *testing.T) {
	open := testnet.Serve(t, testnet.HangUp)
	a, err := New(Config{Name: "a", Hub: "http://127.0.0.1:1", Token: testToken, QueryRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	own, err := kstat.Read()
	if err != nil {
		t.Fatal(err)
	}
	hub, hubSrv := newFakeHub(t)
	hub.agents = []AgentInfo{{Name: "a", Addr: netip.MustParseAddr("127.0.0.1"), Agent: srv.URL}}
	c, _ := NewClient(srv.URL, testToken, nil)
	disc, _ := NewDiscovery(hubSrv.URL, testToken, nil)
	for name, rc := range map[string]doctor.RemoteCounters{"client": c, "discovery": disc} {
		snap, err := rc.Counters(context.Background(), open)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if snap.Netns != own.Netns || len(snap.Counters) == 0 || snap.PortRange != own.PortRange {
			t.Errorf("%s: netns %d with %d counters, range %v; want this test's namespace %d, range %v",
				name, snap.Netns, len(snap.Counters), snap.PortRange, own.Netns, own.PortRange)
		}
	}
	for _, bad := range []string{"127.0.0.1:0", "x", ""} {
		get(t, a.Handler(), PathCounters+"?addr="+bad, testToken, http.StatusBadRequest)
	}
	get(t, a.Handler(), PathCounters+"?addr="+open.String(), "nope", http.StatusUnauthorized)
	hub.agents[0].Agent = ""
	_, err = disc.Counters(context.Background(), open)
	var ae *doctor.AgentError
	if !errors.As(err, &ae) || ae.Failure != doctor.AgentNone || !ae.Hub || !errors.Is(err, ErrNoAgent) {
		t.Errorf("hub without the agent's URL: %v", err)
	}
}
