package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// FaultKind is a way for the server to misbehave on purpose, so clients
// and the doctor can be tested against it.
type FaultKind string

// The server faults.
const (
	// NeverAccept listens but never accepts: the kernel completes
	// handshakes until the accept queue (Config.Backlog, 1 by default in
	// this fault) is full, then drops SYNs.
	NeverAccept FaultKind = "never-accept"
	// AcceptClose accepts each connection and closes it at once (FIN).
	AcceptClose FaultKind = "accept-close"
	// AcceptReset accepts each connection and resets it (SO_LINGER 0).
	AcceptReset FaultKind = "accept-reset"
	// DelayAccept waits Fault.Delay before each accept, then serves: the
	// accept queue drains slowly and fills under load.
	DelayAccept FaultKind = "delay-accept"
	// Stall accepts each connection and never reads from or writes to it,
	// until shutdown.
	Stall FaultKind = "stall"
)

// FaultKinds lists the server faults, for help texts and validation.
var FaultKinds = []FaultKind{NeverAccept, AcceptClose, AcceptReset, DelayAccept, Stall}

// Fault is Config.Fault; the zero value is no fault.
type Fault struct {
	Kind  FaultKind
	Delay time.Duration // DelayAccept's wait before each accept
}

func (f Fault) String() string {
	if f.Kind == DelayAccept {
		return fmt.Sprintf("%s=%v", f.Kind, f.Delay)
	}
	return string(f.Kind)
}

// maxFaultDelay bounds delay-accept's wait, so shutdown stays prompt and
// a typo (1h for 1s) does not look like a hang.
const maxFaultDelay = 10 * time.Minute

// ParseFault reads a fault as reach serve --fault takes it: a kind, and
// for delay-accept its wait, "delay-accept=2s".
func ParseFault(s string) (Fault, error) {
	kind, arg, hasArg := strings.Cut(s, "=")
	f := Fault{Kind: FaultKind(kind)}
	switch f.Kind {
	case NeverAccept, AcceptClose, AcceptReset, Stall:
		if hasArg {
			return Fault{}, fmt.Errorf("%s takes no value", kind)
		}
	case DelayAccept:
		if !hasArg {
			return Fault{}, errors.New("give the wait before each accept: delay-accept=2s")
		}
		d, err := time.ParseDuration(arg)
		if err != nil {
			return Fault{}, fmt.Errorf("delay %q: a duration such as 500ms or 2s", arg)
		}
		f.Delay = d
	default:
		return Fault{}, fmt.Errorf("unknown fault; use one of %v (delay-accept=DUR)", FaultKinds)
	}
	if err := f.validate(); err != nil {
		return Fault{}, err
	}
	return f, nil
}

func (f Fault) validate() error {
	switch f.Kind {
	case "", NeverAccept, AcceptClose, AcceptReset, Stall:
		if f.Delay != 0 {
			return fmt.Errorf("a delay is only for %s", DelayAccept)
		}
	case DelayAccept:
		if f.Delay <= 0 || f.Delay > maxFaultDelay {
			return fmt.Errorf("the delay must be more than 0 and at most %v", maxFaultDelay)
		}
	default:
		return fmt.Errorf("unknown fault; use one of %v", FaultKinds)
	}
	return nil
}

// faultAccepted does what the fault says with a connection just accepted,
// and reports whether it took it (the caller is then done with it).
func (s *Server) faultAccepted(c net.Conn) bool {
	kind := s.cfg.Fault.Kind
	if kind != AcceptClose && kind != AcceptReset {
		return false
	}
	// Counted before the close: a client that saw it finds it in Stats.
	s.faulted.Add(1)
	if tc, ok := c.(*net.TCPConn); ok && kind == AcceptReset {
		tc.SetLinger(0) // close sends RST
	}
	c.Close()
	s.log.Debug("connection faulted", "fault", s.cfg.Fault.String(), "remote", c.RemoteAddr().String())
	return true
}

// stall holds a connection without reading or writing until shutdown.
func (s *Server) stall(c net.Conn) {
	defer s.conn.Done()
	<-s.stopping
	s.untrack(c, true)
}
