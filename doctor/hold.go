package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// DefaultHold is how long the tcp check holds one connection unless
// Options.Hold says otherwise (never longer than the timeout): servers that
// accept and then drop a connection (a proxy whose backend is down, a server
// over its connection limit, one that crashes on accept) mostly do it within
// a second.
const DefaultHold = time.Second

// heldProbe is one connection held after the handshake while the later
// stages run, so a healthy check is not slower by the hold.
type heldProbe struct {
	addr int // the address held
	hold time.Duration
	done chan struct{}
	res  probe.Result // set before done closes
}

// startHold starts holding a connection to the first address, in s.bg
// (Run's, which outlives the tcp stage); nil when there is no address or
// no such context (a check run outside Run).
func startHold(s *State, opt probe.Options) *heldProbe {
	hold := s.Options.hold()
	if s.bg == nil || len(s.Addrs) == 0 || hold <= 0 {
		return nil
	}
	opt.ReadWait = 0
	opt.Hold = hold
	h := &heldProbe{hold: opt.Hold, done: make(chan struct{})}
	ep := endpoint.FromAddrPort(s.addrPort(h.addr))
	go func() {
		defer close(h.done)
		h.res = probe.Run(s.bg, ep, opt)
	}()
	return h
}

// wait waits for the held connection and says what it showed: a line for
// the tcp check's detail and, when the server dropped a connection the
// other probes found open, the finding (fail). ok is false when nothing was
// held.
func (h *heldProbe) wait(ctx context.Context, s *State) (detail string, fs []Finding, ok bool) {
	if h == nil {
		return "", nil, false
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		<-h.done // Run's context ended, and the hold with it
	}
	r, ap := h.res, s.addrPort(h.addr)
	switch {
	case r.Class == probe.Open:
		return fmt.Sprintf("held a connection to %s for %s: the server kept it", ap, round(h.hold)), nil, true
	case r.Class == probe.ClosedByPeer && len(r.Banner) > 0:
		// It spoke, then closed: what some protocols do after a greeting.
		return fmt.Sprintf("held a connection to %s: the server sent %q, then closed it %s after the accept",
			ap, r.Banner, round(r.Held)), nil, true
	case r.Class == probe.Reset || r.Class == probe.ClosedByPeer:
		f := heldFinding(s, h, r)
		if s.Primary(h.addr) == probe.Open {
			fs = append(fs, f)
		}
		return "held a connection to " + ap.String() + ": " + f.Evidence, fs, true
	}
	return fmt.Sprintf("no connection to %s to hold: %s", ap, r.Class), nil, true
}

// heldFinding is what a server that dropped the held connection shows.
func heldFinding(s *State, h *heldProbe, r probe.Result) Finding {
	what, does, cause := "closed", "closes", ClosedByPeer
	if r.Class == probe.Reset {
		what, does, cause = "reset", "resets", ResetByPeer
	}
	return Finding{Cause: cause, Confidence: Confirmed, Addr: s.label(h.addr),
		Issue: fmt.Sprintf("The server accepts the connection, then %s it %s later", does, round(r.Held)),
		Evidence: fmt.Sprintf("accepted, then %s %s later: the handshake with %s completed and a "+
			"connection held for up to %s was %s by the server", what, round(r.Held), s.addrPort(h.addr),
			round(h.hold), what),
		Fix: "look at the server's logs: it rejects this client (allow-list, connection limit, " +
			"TLS mismatch) or fails after accepting; a proxy in front may have no healthy backend"}
}
