package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reach-tools/reach/monitor"
)

func (s *Server) registerAPI() {
	s.mux.HandleFunc("GET /api/endpoints", s.serveEndpoints)
	s.mux.HandleFunc("GET /api/endpoints/{source}/{name}", s.serveEndpoint)
	s.mux.HandleFunc("GET /api/endpoints/{source}/{name}/latency", s.serveLatency)
	s.mux.HandleFunc("GET /api/events", s.serveEvents)
	s.mux.HandleFunc("GET /api/changes", s.serveChanges)
	s.mux.HandleFunc("GET /api/maintenance", s.serveWindows)
	s.mux.HandleFunc("POST /api/maintenance", s.addWindow)
	s.mux.HandleFunc("DELETE /api/maintenance/{id}", s.removeWindow)
}

// serveChanges lists the network changes the monitor remembers, newest
// first: what the kernel announced, which endpoints were re-probed at once,
// and which went down or came up after it.
func (s *Server) serveChanges(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.opt.Monitor.NetChanges())
}

// EndpointView is a status with its uptime, as the list shows it.
type EndpointView struct {
	monitor.Status
	Uptime24h *float64 `json:"uptime_24h,omitempty"` // percent; absent without history
	// Held says why its alerts are held now ("maintenance nightly",
	// "depends on db, which is down"); empty when they are not.
	Held string `json:"held,omitempty"`
}

// EndpointDetail is everything the page shows about one endpoint.
type EndpointDetail struct {
	monitor.Status
	Uptime map[string]*float64 `json:"uptime"` // "1h", "24h", "30d" -> percent, null when nothing was probed
	// Down is the transition that began the current down period, with the
	// doctor's diagnosis from that moment; absent unless down.
	Down        *monitor.Transition  `json:"down,omitempty"`
	Transitions []monitor.Transition `json:"transitions"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, monitor.ErrNoEndpoint) {
		code = http.StatusNotFound
	} else {
		s.log.Error("dashboard api", "path", r.URL.Path, "err", err)
	}
	http.Error(w, err.Error(), code)
}

func (s *Server) serveEndpoints(w http.ResponseWriter, r *http.Request) {
	sts := s.opt.Monitor.Statuses()
	up := s.uptime.get(r, s.opt.Monitor.Store())
	out := make([]EndpointView, len(sts))
	var held []string
	if a := s.opt.Alerting; a != nil {
		held = a.HeldIn(sts)
	}
	for i, st := range sts {
		out[i].Status = st
		if u, ok := up[[2]string{st.Source, st.Endpoint}]; ok {
			out[i].Uptime24h = percent(u)
		}
		if held != nil {
			out[i].Held = held[i]
		}
	}
	writeJSON(w, map[string]any{"endpoints": out, "time": time.Now()})
}

func percent(u monitor.Uptime) *float64 {
	if u.Total == 0 {
		return nil
	}
	p := u.Percent()
	return &p
}

func (s *Server) serveEndpoint(w http.ResponseWriter, r *http.Request) {
	source, name := r.PathValue("source"), r.PathValue("name")
	st, err := s.opt.Monitor.Status(source, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := EndpointDetail{Status: st, Uptime: map[string]*float64{}, Transitions: []monitor.Transition{}}
	if store := s.opt.Monitor.Store(); store != nil {
		now := time.Now()
		day := 24 * time.Hour
		for label, win := range map[string]time.Duration{"1h": time.Hour, "24h": day, "30d": 30 * day} {
			u, err := store.Uptime(r.Context(), source, name, now.Add(-win))
			if err != nil {
				s.fail(w, r, err)
				return
			}
			d.Uptime[label] = percent(u)
		}
		ts, err := store.Transitions(r.Context(), source, name, 20)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if ts != nil {
			d.Transitions = ts
		}
		if st.State == monitor.StateDown {
			for i := range ts {
				if ts[i].To == monitor.StateDown && !ts[i].Time.After(st.Since) {
					d.Down = &ts[i]
					break
				}
			}
		}
	}
	writeJSON(w, d)
}

// windows the latency plot offers, and the bucket width of each.
var windows = map[string][2]time.Duration{
	"1h":  {time.Hour, 30 * time.Second},
	"24h": {24 * time.Hour, monitor.RollupWidth},
}

func (s *Server) serveLatency(w http.ResponseWriter, r *http.Request) {
	source, name := r.PathValue("source"), r.PathValue("name")
	if _, err := s.opt.Monitor.Status(source, name); err != nil {
		s.fail(w, r, err)
		return
	}
	win := r.URL.Query().Get("window")
	if win == "" {
		win = "1h"
	}
	spec, ok := windows[win]
	if !ok {
		http.Error(w, fmt.Sprintf("window %q: want 1h or 24h", win), http.StatusBadRequest)
		return
	}
	pts := []monitor.Point{}
	if store := s.opt.Monitor.Store(); store != nil {
		p, err := store.Latency(r.Context(), source, name, time.Now().Add(-spec[0]), spec[1])
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if p != nil {
			pts = p
		}
	}
	writeJSON(w, map[string]any{"window": win, "bucket_s": spec[1].Seconds(), "points": pts})
}

// serveEvents streams status changes as server-sent events: a "snapshot"
// event with every status first (and again after a reload added or removed
// endpoints), then "status" events with those that changed, at most a few
// per second, and a comment each idle second. The server's timeouts would
// cut it: each write gets its own deadline (a client that stops reading is
// cut after streamWriteTimeout), and the stream ends after StreamLifetime;
// EventSource reconnects by itself.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	life := s.opt.StreamLifetime
	if life <= 0 {
		life = DefaultStreamLifetime
	}
	end := time.Now().Add(life)
	rc := http.NewResponseController(w)
	// The server's read timeout would end the request's context mid-stream
	// (its wait for the client's next bytes times out); the lifetime rules.
	_ = rc.SetReadDeadline(end.Add(time.Second))
	ctx, cancel := context.WithDeadline(r.Context(), end)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	m := s.opt.Monitor
	changed := m.Changed()
	all, seq, _ := m.StatusesSince(0)
	// retry: the page comes back after a second when the lifetime ends.
	if !write([]byte("retry: 1000\n\n")) || !write(event("snapshot", all)) {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// Coalesce bursts of changes.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		case <-tick.C:
		}
		changed = m.Changed()
		sts, next, full := m.StatusesSince(seq)
		seq = next
		var b []byte
		switch {
		case full:
			// Endpoints came or went (a reload): the page replaces its list.
			b = event("snapshot", sts)
		case len(sts) == 0:
			// A comment keeps proxies from closing an idle stream.
			b = []byte(": idle\n\n")
		default:
			b = event("status", sts)
		}
		if !write(b) {
			return
		}
	}
}

// event frames v as one server-sent event; statuses always marshal.
func event(name string, v any) []byte {
	b, _ := json.Marshal(v)
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", name, b)
}

// uptimeCache keeps every endpoint's 24h uptime for a while: computing it
// reads the whole day's history.
type uptimeCache struct {
	mu   sync.Mutex
	at   time.Time
	vals map[[2]string]monitor.Uptime
}

const uptimeCacheFor = 15 * time.Second

func (c *uptimeCache) get(r *http.Request, store *monitor.Store) map[[2]string]monitor.Uptime {
	if store == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < uptimeCacheFor {
		return c.vals
	}
	all, err := store.Uptimes(r.Context(), time.Now().Add(-24*time.Hour))
	if err != nil {
		return c.vals // stale beats nothing
	}
	c.vals = map[[2]string]monitor.Uptime{}
	for k, u := range all {
		c.vals[[2]string{k.Source, k.Endpoint}] = u
	}
	c.at = time.Now()
	return c.vals
}

func (s *Server) serveWindows(w http.ResponseWriter, r *http.Request) {
	ws := []monitor.WindowView{}
	if a := s.opt.Alerting; a != nil {
		ws = append(ws, a.Windows()...)
	}
	writeJSON(w, ws)
}

// WindowRequest is the body of POST /api/maintenance: a one-off window
// from Start (default now) to End, or for For ("2h").
type WindowRequest struct {
	Endpoints []string `json:"endpoints"` // empty: every endpoint
	Start     string   `json:"start"`     // RFC 3339
	End       string   `json:"end"`       // RFC 3339
	For       string   `json:"for"`       // a duration, instead of End
	Reason    string   `json:"reason"`
}

// maxWindowBody bounds a window's request: a few names and times.
const maxWindowBody = 64 << 10

func (s *Server) addWindow(w http.ResponseWriter, r *http.Request) {
	var req WindowRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxWindowBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad window: "+err.Error()+`; want {"endpoints": ["db"], "start": "2026-03-29T01:00:00Z", `+
			`"end": "2026-03-29T03:00:00Z", "reason": "upgrade"} (or "for": "2h" instead of end)`, http.StatusBadRequest)
		return
	}
	now := time.Now()
	win := monitor.Window{Endpoints: req.Endpoints, Reason: req.Reason, Start: now}
	var err error
	if req.Start != "" {
		win.Start, err = time.Parse(time.RFC3339, req.Start)
	}
	switch {
	case err != nil:
		err = fmt.Errorf("start %q: want RFC 3339, e.g. 2026-03-29T01:00:00Z", req.Start)
	case req.End != "" && req.For != "":
		err = errors.New(`give end or for, not both`)
	case req.End != "":
		if win.End, err = time.Parse(time.RFC3339, req.End); err != nil {
			err = fmt.Errorf("end %q: want RFC 3339, e.g. 2026-03-29T03:00:00Z", req.End)
		}
	case req.For != "":
		d, perr := time.ParseDuration(req.For)
		if perr != nil || d <= 0 {
			err = fmt.Errorf("for %q: want a positive duration such as 2h or 90m (days in hours: 48h)", req.For)
		}
		win.End = win.Start.Add(d)
	}
	if err == nil {
		err = s.knownEndpoints(req.Endpoints)
	}
	if err == nil {
		win, err = s.opt.Alerting.AddWindow(win)
	}
	if errors.Is(err, monitor.ErrStore) {
		s.log.Error("cannot keep a maintenance window", "err", err)
		http.Error(w, "the window could not be kept: "+err.Error()+"; try again, and check the hub's store", http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, "bad window: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.log.Info("maintenance window added", "id", win.ID, "window", win.String(), "reason", win.Reason)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(win)
}

// knownEndpoints refuses a window for a name the hub watches under no
// source: a typo would hold nothing while its author thinks the alerts
// held.
func (s *Server) knownEndpoints(names []string) error {
	m := s.opt.Monitor
	if m == nil || len(names) == 0 {
		return nil
	}
	known := map[string]bool{}
	var list []string
	for _, st := range m.Statuses() {
		if !known[st.Endpoint] {
			known[st.Endpoint] = true
			list = append(list, st.Endpoint)
		}
	}
	for _, n := range names {
		if known[n] {
			continue
		}
		slices.Sort(list)
		more := ""
		if len(list) > 10 {
			list, more = list[:10], fmt.Sprintf(" and %d more", len(list)-10)
		}
		return fmt.Errorf("no endpoint is named %q, so the window would hold nothing; "+
			"the endpoints are %s%s (GET /api/endpoints lists them)", n, strings.Join(list, ", "), more)
	}
	return nil
}

func (s *Server) removeWindow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.opt.Alerting.RemoveWindow(id); err != nil {
		code := http.StatusNotFound
		if !errors.Is(err, monitor.ErrNoWindow) {
			code = http.StatusServiceUnavailable
			s.log.Error("cannot remove a maintenance window", "id", id, "err", err)
		}
		http.Error(w, err.Error(), code)
		return
	}
	s.log.Info("maintenance window removed", "id", id)
	w.WriteHeader(http.StatusNoContent)
}
