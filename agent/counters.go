package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/kstat"
)

// PathCounters serves the agent's kernel counters: GET ?addr=IP:PORT ->
// kstat.Snapshot of the agent's network namespace. The doctor reads them as
// its probes start and after them, and counts what the target's kernel saw
// meanwhile (SYNs dropped to a full accept queue, a full conntrack table).
const PathCounters = "/agent/v1/counters"

func (a *Agent) serveCounters(w http.ResponseWriter, r *http.Request) {
	if dst, err := netip.ParseAddrPort(r.URL.Query().Get("addr")); err != nil || dst.Port() == 0 {
		http.Error(w, "addr: want the IP:port you dialled, e.g. 198.18.0.2:5432", http.StatusBadRequest)
		return
	}
	snap, err := a.cfg.Counters()
	if err != nil {
		http.Error(w, "reading the kernel's counters: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, snap)
}

// Counters asks the agent for its kernel counters, as the doctor's kernel
// check does before and after its probes to addr. Its errors are
// *doctor.AgentError.
func (c *Client) Counters(ctx context.Context, addr netip.AddrPort) (kstat.Snapshot, error) {
	var snap kstat.Snapshot
	err := c.c.call(ctx, http.MethodGet, PathCounters, url.Values{"addr": {addr.String()}}, nil, &snap)
	if err != nil {
		return snap, &doctor.AgentError{URL: c.c.base, Failure: failure(err), Err: err}
	}
	return snap, nil
}

// Counters finds the agent for addr's host through the hub and asks it for
// its kernel counters (see Client.Counters).
func (d *Discovery) Counters(ctx context.Context, addr netip.AddrPort) (kstat.Snapshot, error) {
	c, name, err := d.agentFor(ctx, addr)
	if err != nil {
		return kstat.Snapshot{}, err
	}
	snap, err := c.Counters(ctx, addr)
	var ae *doctor.AgentError
	if errors.As(err, &ae) {
		ae.Name = name
	}
	return snap, err
}

var (
	_ doctor.RemoteCounters = (*Client)(nil)
	_ doctor.RemoteCounters = (*Discovery)(nil)
)

// agentFor finds the agent of addr's host in the hub's list, as Evidence
// does.
func (d *Discovery) agentFor(ctx context.Context, addr netip.AddrPort) (*Client, string, error) {
	var hosts []AgentInfo
	if err := d.hub.call(ctx, http.MethodGet, PathAgents, nil, nil, &hosts); err != nil {
		return nil, "", &doctor.AgentError{Hub: true, URL: d.hub.base, Failure: failure(err), Err: err}
	}
	for _, h := range hosts {
		if h.Addr == addr.Addr().Unmap() && h.Agent != "" {
			c, err := NewClient(h.Agent, d.token, d.hub.http)
			if err != nil {
				return nil, "", &doctor.AgentError{Name: h.Name, URL: h.Agent, Failure: doctor.AgentFailed, Err: err}
			}
			return c, h.Name, nil
		}
	}
	return nil, "", &doctor.AgentError{Hub: true, URL: d.hub.base, Failure: doctor.AgentNone,
		Err: fmt.Errorf("%w: %s", ErrNoAgent, addr.Addr())}
}
