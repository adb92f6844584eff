package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/internal/httpsafe"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// Registry keeps registered agents across restarts and replicas: the
// monitor's Store is one.
type Registry interface {
	PutAgent(ctx context.Context, r monitor.AgentRecord) (bool, error)
	DeleteAgent(ctx context.Context, name string, run int64) (bool, error)
	Agents(ctx context.Context) ([]monitor.AgentRecord, error)
}

var _ Registry = (*monitor.Store)(nil)

// maxRegisterBody bounds a registration's body: the largest valid one
// (MaxLabels of 317-byte keys and 63-byte values, MaxAddrs) is under 16 KiB.
const maxRegisterBody = 64 << 10

// reloadEvery bounds how often an unknown agent's call makes the hub read
// the registry again.
const reloadEvery = time.Second

// ErrRegistryFull is a registration refused because max_agents agents are
// registered.
var ErrRegistryFull = errors.New("hub: registration.max_agents agents are registered")

// Restore reads the registered agents from the Registry: after a restart
// they are known again, and are stale only if they stay silent.
func (h *Hub) Restore(ctx context.Context) error {
	if h.Registry == nil {
		return nil
	}
	recs, err := h.Registry.Agents(ctx)
	if err != nil {
		return err
	}
	reg := map[string]agent.Registration{}
	for _, rec := range recs {
		var r agent.Registration
		if err := json.Unmarshal(rec.Data, &r); err != nil || r.Check() != nil || r.Name != rec.Name {
			h.logger().Warn("the store holds a registered agent this hub cannot read; ignored",
				"agent", rec.Name, "err", cmpErr(err, r.Check()))
			continue
		}
		reg[r.Name] = r
	}
	h.gate.Lock()
	defer h.gate.Unlock()
	h.mu.Lock()
	old := h.reg
	h.reg, h.reloaded = reg, time.Now()
	err = h.rebuild()
	now := time.Now()
	for name := range reg {
		if _, ok := old[name]; !ok {
			h.seenAt(name, now) // a fresh grace from now
		}
	}
	h.mu.Unlock()
	if err == nil && h.ListsChanged != nil && !maps.EqualFunc(old, reg, sameRegistration) {
		h.ListsChanged()
	}
	return err
}

func cmpErr(errs ...error) error { return errors.Join(errs...) }

func sameRegistration(a, b agent.Registration) bool {
	return a.Run == b.Run && slices.Equal(a.Addrs, b.Addrs) && maps.Equal(a.Labels, b.Labels) &&
		a.Advertise == b.Advertise
}

// knowAgent reads the registry again when name is not known: another
// replica may have registered it. At most once per reloadEvery.
func (h *Hub) knowAgent(ctx context.Context, name string) {
	if h.Registry == nil {
		return
	}
	h.mu.RLock()
	_, ok := h.lists[name]
	due := time.Since(h.reloaded) >= reloadEvery
	h.mu.RUnlock()
	if ok || !due {
		return
	}
	if err := h.Restore(ctx); err != nil {
		h.logger().Warn("cannot read registered agents from the store", "err", err)
	}
}

// seenAt notes that name called at t; h.mu must be held.
// NoteSeen tells the hub that agent name called another replica at t:
// a replica that looks for stale agents counts the calls every replica
// took (their shared store says when), not only its own.
func (h *Hub) NoteSeen(name string, t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.agents[name]; a == nil || a.last.Before(t) {
		h.seenAt(name, t)
	}
}

func (h *Hub) seenAt(name string, t time.Time) *agentSeen {
	a := h.agents[name]
	if a == nil {
		a = &agentSeen{}
		h.agents[name] = a
	}
	a.last = t
	return a
}

func (h *Hub) serveRegister(w http.ResponseWriter, r *http.Request) {
	var reg agent.Registration
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRegisterBody)).Decode(&reg); err != nil {
		if httpsafe.TooLarge(w, err) {
			return
		}
		http.Error(w, "bad registration: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !agent.CertAllows(r, reg.Name) {
		http.Error(w, "client certificate does not name agent "+reg.Name, http.StatusForbidden)
		return
	}
	reply, status, err := h.Register(r.Context(), reg, r)
	if err != nil {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "10")
		}
		name, _ := capText(reg.Name, 64)
		h.logger().Warn("agent registration refused", "agent", name, "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), status)
		return
	}
	writeJSON(w, reply)
}

// Register takes an agent's registration (r, the request it came in, may
// be nil) and says what to answer: the HTTP status goes with the error.
// Everything in reg is checked (agent.Registration.Check); a name the
// config lists is accepted only from one of that host's addresses (the
// config wins: its labels and address stay), a name or address that
// would pass for a configured host is refused, and so is an earlier run
// than the one registered.
func (h *Hub) Register(ctx context.Context, reg agent.Registration, r *http.Request) (
	agent.RegisterReply, int, error) {
	if err := reg.Check(); err != nil {
		return agent.RegisterReply{}, http.StatusBadRequest, err
	}
	if reg.Name == monitor.LocalSource {
		return agent.RegisterReply{}, http.StatusBadRequest, fmt.Errorf("name: %s", reservedName)
	}
	for i, a := range reg.Addrs {
		reg.Addrs[i] = a.Unmap()
	}
	h.mu.RLock()
	var conflict error
	configured := false
	for _, hc := range h.cfg.Hosts {
		switch {
		case hc.Name == reg.Name:
			configured = true
			if !slices.Contains(reg.Addrs, hc.Addr) {
				conflict = fmt.Errorf("host %s is in the hub config with addr %s, not %v", hc.Name,
					hc.Addr, reg.Addrs)
			}
		case hc.Addr == reg.Addrs[0]:
			conflict = fmt.Errorf("%s is host %s's address in the hub config; agent %s cannot "+
				"take it", hc.Addr, hc.Name, reg.Name)
		}
	}
	old, had := h.reg[reg.Name]
	full := !had && !configured && len(h.reg) >= h.cfg.maxAgents()
	maxAgents := h.cfg.maxAgents()
	h.mu.RUnlock()
	switch {
	case conflict != nil:
		return agent.RegisterReply{}, http.StatusConflict, conflict
	case had && reg.Run < old.Run:
		return agent.RegisterReply{}, http.StatusConflict, fmt.Errorf("agent %s: a later run "+
			"(started %v) is registered: is a second agent running under this name?", reg.Name,
			time.Unix(0, old.Run).UTC().Format(time.RFC3339))
	case full:
		return agent.RegisterReply{}, http.StatusServiceUnavailable, fmt.Errorf("%w (%d): "+
			"raise it in the hub config, or deregister agents", ErrRegistryFull, maxAgents)
	}
	if configured {
		h.mu.Lock()
		s := h.seenAt(reg.Name, time.Now())
		if r != nil {
			s.addr = r.RemoteAddr
		}
		if reg.Advertise != "" && h.checkAdvertise(reg.Name, reg.Advertise) == nil {
			s.url = reg.Advertise
		}
		n := len(h.lists[reg.Name].Targets)
		h.mu.Unlock()
		return agent.RegisterReply{Name: reg.Name, Targets: n}, http.StatusOK, nil
	}
	if h.Registry != nil {
		data, err := json.Marshal(reg)
		if err != nil {
			return agent.RegisterReply{}, http.StatusInternalServerError, err
		}
		ok, err := h.Registry.PutAgent(ctx, monitor.AgentRecord{Name: reg.Name, Run: reg.Run, Data: data})
		if err != nil {
			return agent.RegisterReply{}, http.StatusServiceUnavailable, err
		}
		if !ok {
			return agent.RegisterReply{}, http.StatusConflict, fmt.Errorf("agent %s: a later run "+
				"is registered (by another hub replica): is a second agent running under this name?",
				reg.Name)
		}
	}
	h.gate.Lock()
	h.mu.Lock()
	prev := h.reg[reg.Name]
	h.reg[reg.Name] = reg
	err := h.rebuild()
	s := h.seenAt(reg.Name, time.Now())
	if r != nil {
		s.addr = r.RemoteAddr
	}
	s.url = reg.Advertise
	n := len(h.lists[reg.Name].Targets)
	h.mu.Unlock()
	h.gate.Unlock()
	if err != nil { // cannot be: the config was checked and reg too
		return agent.RegisterReply{}, http.StatusInternalServerError, err
	}
	if !sameRegistration(prev, reg) {
		h.logger().Info("agent registered", "agent", reg.Name, "addrs", reg.Addrs, "labels", reg.Labels,
			"targets", n)
		h.listsChanged()
	}
	return agent.RegisterReply{Name: reg.Name, Targets: n}, http.StatusOK, nil
}

func (h *Hub) listsChanged() {
	if h.ListsChanged != nil {
		h.ListsChanged()
	}
}

func (h *Hub) serveDeregister(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("agent")
	run, err := strconv.ParseInt(r.URL.Query().Get("run"), 10, 64)
	if err != nil {
		http.Error(w, "run: want the agent's run (its registration's), a number", http.StatusBadRequest)
		return
	}
	if !agent.CertAllows(r, name) {
		http.Error(w, "client certificate does not name agent "+name, http.StatusForbidden)
		return
	}
	status, err := h.Deregister(r.Context(), name, run)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	_, _ = io.WriteString(w, "{}\n")
}

// Deregister removes a registered agent that leaves (run: its
// registration's; an earlier run's leaving removes nothing) and the pairs
// from and to it. A host of the config stays: the config lists it.
func (h *Hub) Deregister(ctx context.Context, name string, run int64) (int, error) {
	h.knowAgent(ctx, name)
	h.mu.RLock()
	reg, ok := h.reg[name]
	_, configured := h.lists[name]
	h.mu.RUnlock()
	switch {
	case !ok && configured:
		return http.StatusOK, nil
	case !ok:
		return http.StatusNotFound, fmt.Errorf("agent %s is not registered", name)
	case run < reg.Run:
		return http.StatusConflict, fmt.Errorf("agent %s: a later run is registered; kept", name)
	}
	if h.Registry != nil {
		if _, err := h.Registry.DeleteAgent(ctx, name, run); err != nil {
			return http.StatusServiceUnavailable, err
		}
	}
	h.gate.Lock()
	h.mu.Lock()
	state := ""
	if s := h.agents[name]; s != nil {
		state = s.state
	}
	delete(h.reg, name)
	err := h.rebuild()
	h.mu.Unlock()
	h.gate.Unlock()
	if err != nil {
		return http.StatusInternalServerError, err
	}
	h.Metrics.forgetAgent(name)
	h.logger().Info("agent deregistered", "agent", name)
	if state == agent.StateAlerting {
		h.notify(reg, monitor.StateUp, monitor.StateDown, time.Now(), "agent "+name+" deregistered")
	}
	h.listsChanged()
	return http.StatusOK, nil
}

// Sweep judges every registered agent at now: silent for
// registration.stale_after it is stale, stale for alert_after too it is
// alerting, and the Notifier is told (once); an alerting agent that calls
// again is told of as back. reach watch runs it every second.
func (h *Hub) Sweep(now time.Time) {
	type change struct {
		reg      agent.Registration
		to, from monitor.State
		verdict  string
	}
	var changes []change
	h.mu.Lock()
	stale, grace := h.cfg.staleAfter(), h.cfg.alertAfter()
	counts := map[string]int{"": 0, agent.StateStale: 0, agent.StateAlerting: 0}
	for _, hc := range h.members {
		if !hc.registered {
			continue
		}
		s := h.agents[hc.Name]
		if s == nil { // never seen by this hub: from now
			s = h.seenAt(hc.Name, now)
		}
		silent := now.Sub(s.last)
		state := ""
		switch {
		case silent > stale+grace:
			state = agent.StateAlerting
		case silent > stale:
			state = agent.StateStale
		}
		if state != s.state {
			reg := h.reg[hc.Name]
			switch {
			case state == agent.StateAlerting:
				changes = append(changes, change{reg, monitor.StateDown, monitor.StateUp,
					fmt.Sprintf("agent %s has not called the hub for %v (stale after %v, alert after "+
						"%v more): its host, its network or the agent is down", hc.Name,
						silent.Round(time.Second), stale, grace)})
			case s.state == agent.StateAlerting:
				changes = append(changes, change{reg, monitor.StateUp, monitor.StateDown,
					fmt.Sprintf("agent %s calls the hub again", hc.Name)})
			}
			level := h.logger().Info
			if state != "" {
				level = h.logger().Warn
			}
			level("registered agent "+cmpState(state), "agent", hc.Name, "last_seen", s.last,
				"silent", silent.Round(time.Millisecond))
			s.state = state
		}
		counts[state]++
		h.Metrics.agentSeen(hc.Name, s.last, state != "")
	}
	h.Metrics.agentStates(counts)
	h.mu.Unlock()
	for _, c := range changes {
		h.notify(c.reg, c.to, c.from, now, c.verdict)
	}
}

func cmpState(s string) string {
	if s == "" {
		return "calls in time"
	}
	return s
}

// notify tells the Notifier of a registered agent's change: endpoint
// "agent", source the agent, cause "agent-stale" while down.
func (h *Hub) notify(reg agent.Registration, to, from monitor.State, at time.Time, verdict string) {
	if h.Notifier == nil {
		return
	}
	a := monitor.Alert{Endpoint: "agent", Source: reg.Name, Target: reg.Addrs[0].String(),
		Labels: reg.Labels, State: to, Previous: from, Time: at, Class: probe.Timeout,
		Verdict: verdict}
	if to == monitor.StateDown {
		a.Cause = "agent-stale"
	} else {
		a.Class = probe.Open
	}
	h.Notifier.Notify(a)
}

// Lists returns a copy of every agent's probe list, by name.
func (h *Hub) Lists() map[string]agent.ProbeList {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return maps.Clone(h.lists)
}
