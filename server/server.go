// Package server is reach's reference TCP server: several listeners in one
// process, echo/discard/banner modes, explained bind failures, a connection
// limit that tells clients why they are turned away, idle timeouts, accept
// errors that back off instead of spinning, and a graceful, bounded shutdown.
//
// Listen binds every address or none; Serve runs until its context is
// canceled, then stops accepting, lets open connections finish for
// Config.Drain and closes the rest.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the server does with each connection.
type Mode string

// The modes.
const (
	ModeEcho    Mode = "echo"    // send back every byte received, until the client closes
	ModeDiscard Mode = "discard" // read and drop every byte, until the client closes
	ModeBanner  Mode = "banner"  // send Config.Banner, then close (reading the client's leftovers for up to a second)
)

// Modes lists the modes, for help texts and validation.
var Modes = []Mode{ModeEcho, ModeDiscard, ModeBanner}

// Config configures a server. The zero value of each field is usable except
// Listen, which needs at least one address.
type Config struct {
	// Listen holds the addresses to listen on, as HOST:PORT: "127.0.0.1:7000",
	// "[::1]:7000", ":7000" for every address of the host; port 0 picks a
	// free port (read it back with Server.Addrs).
	Listen []string
	// Mode is what to do with each connection; empty means ModeEcho.
	Mode Mode
	// Banner is sent as is to every client in ModeBanner.
	Banner string
	// MaxConns limits the connections served at once; 0 means no limit.
	// Beyond it a connection is accepted, sent BusyMessage, and closed, so
	// the client sees why instead of a timeout (which is what a full accept
	// queue gives). Under a flood, past 64 being turned away at once, the
	// rest are closed without the message.
	MaxConns int
	// IdleTimeout closes a connection when the client sends nothing (or
	// reads nothing we send) for this long; 0 means never.
	IdleTimeout time.Duration
	// Drain is how long open connections may go on after shutdown starts
	// before they are closed; 0 closes them at once.
	Drain time.Duration
	// Backlog is the listen backlog, the accept queue's length; 0 means
	// the system's (net.core.somaxconn), or 1 with the NeverAccept fault,
	// so that a couple of connections fill it.
	Backlog int
	// Fault makes the server misbehave on purpose (see FaultKind); the
	// zero value serves normally.
	Fault Fault
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// BusyMessage is what a client over Config.MaxConns receives before the
// server closes the connection; %d is the limit.
const BusyMessage = "busy: this server serves at most %d connections at once; try again later\n"

// Backoff after failed accepts, as net/http does: 5 ms doubling to 1 s.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// linger bounds how long a connection we are done with (turned away, or
// banner sent) is kept open to read the client's leftovers, so closing it
// sends FIN rather than RST, which could make the client lose our message.
const linger = time.Second

// maxRejecting bounds the turned-away connections being lingered on; past
// it they are closed at once.
const maxRejecting = 64

// ConfigError is an invalid Config field. Err says what is wrong and what
// to give instead, in words that read after the field's name or after the
// name a front end gives it (reach serve names the flag: --listen, ...).
type ConfigError struct {
	// Field is one of "listen address", "mode", "banner", "max conns",
	// "idle timeout", "drain", "backlog" and "fault".
	Field string
	Value string // the value given; empty when the field was left empty
	Err   error
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
}
func (e *ConfigError) Unwrap() error { return e.Err }

// Stats counts what a server did since Listen.
type Stats struct {
	Accepted     uint64 `json:"accepted"`      // connections served
	Rejected     uint64 `json:"rejected"`      // connections turned away over MaxConns
	Active       int    `json:"active"`        // connections being served now
	BytesIn      uint64 `json:"bytes_in"`      // bytes read from clients
	BytesOut     uint64 `json:"bytes_out"`     // bytes written to clients
	AcceptErrors uint64 `json:"accept_errors"` // failed accepts (each followed by a back-off)
	Faulted      uint64 `json:"faulted"`       // connections closed or reset at once by Config.Fault
}

// Server is a set of bound listeners. Create it with Listen.
type Server struct {
	cfg       Config
	log       *slog.Logger
	listeners []net.Listener

	serveOnce sync.Once
	closeOnce sync.Once
	stopping  chan struct{} // closed when shutdown starts

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	active    int
	rejecting int
	forced    bool // open connections were closed by shutdown

	loops sync.WaitGroup // accept loops
	conn  sync.WaitGroup // connection handlers

	accepted, rejected, bytesIn, bytesOut, acceptErrors, faulted atomic.Uint64
}

// Listen validates cfg and binds every address in cfg.Listen, in order. If
// one fails, those already bound are closed again and the error is a
// *BindError (or a *ConfigError for invalid input). ctx bounds name
// resolution and the lookup of who holds a port.
func Listen(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeEcho
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, stopping: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	var lc net.ListenConfig
	for _, addr := range cfg.Listen {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			be := explainBind(ctx, addr, err)
			if be.Cause == CauseInUse {
				be.Overlaps = overlapping(cfg.Listen, s.listeners, be.Bind)
			}
			for _, l := range s.listeners {
				l.Close()
			}
			return nil, be
		}
		s.listeners = append(s.listeners, ln)
	}
	backlog := cfg.Backlog
	if backlog == 0 && cfg.Fault.Kind == NeverAccept {
		backlog = 1
	}
	if backlog > 0 {
		for _, ln := range s.listeners {
			if err := setBacklog(ln, backlog); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	return s, nil
}

func (c *Config) validate() error {
	if len(c.Listen) == 0 {
		return &ConfigError{Field: "listen address", Err: errors.New("none given; give at least one address to listen on, e.g. 127.0.0.1:7000")}
	}
	seen := map[string]bool{}
	for _, a := range c.Listen {
		if err := checkListenAddr(a); err != nil {
			return &ConfigError{Field: "listen address", Value: a, Err: err}
		}
		if seen[a] && !strings.HasSuffix(a, ":0") {
			return &ConfigError{Field: "listen address", Value: a, Err: errors.New("given twice")}
		}
		seen[a] = true
	}
	switch c.Mode {
	case "", ModeEcho, ModeDiscard:
		if c.Banner != "" {
			mode := c.Mode
			if mode == "" {
				mode = ModeEcho
			}
			return &ConfigError{Field: "banner", Value: c.Banner, Err: fmt.Errorf("only sent in mode %q, not %q; drop the banner, or use mode %q", ModeBanner, mode, ModeBanner)}
		}
	case ModeBanner:
		if c.Banner == "" {
			return &ConfigError{Field: "banner", Err: fmt.Errorf("mode %q needs one: the text to send to each client", ModeBanner)}
		}
	default:
		return &ConfigError{Field: "mode", Value: string(c.Mode), Err: fmt.Errorf("unknown mode; use one of %v", Modes)}
	}
	if c.MaxConns < 0 {
		return &ConfigError{Field: "max conns", Value: fmt.Sprint(c.MaxConns), Err: errors.New("must be 0 (no limit) or more")}
	}
	if c.IdleTimeout < 0 {
		return &ConfigError{Field: "idle timeout", Value: c.IdleTimeout.String(), Err: errors.New("must be 0 (none) or more")}
	}
	if c.Drain < 0 {
		return &ConfigError{Field: "drain", Value: c.Drain.String(), Err: errors.New("must be 0 (close at once) or more")}
	}
	if c.Backlog < 0 || c.Backlog > 1<<16 {
		return &ConfigError{Field: "backlog", Value: fmt.Sprint(c.Backlog), Err: errors.New("must be 0 (the system's) to 65536")}
	}
	if err := c.Fault.validate(); err != nil {
		return &ConfigError{Field: "fault", Value: c.Fault.String(), Err: err}
	}
	return nil
}

// Addrs returns the bound addresses, in the order of Config.Listen.
func (s *Server) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.listeners))
	for i, ln := range s.listeners {
		out[i] = ln.Addr().(*net.TCPAddr).AddrPort()
	}
	return out
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	return Stats{
		Accepted:     s.accepted.Load(),
		Rejected:     s.rejected.Load(),
		Active:       active,
		BytesIn:      s.bytesIn.Load(),
		BytesOut:     s.bytesOut.Load(),
		AcceptErrors: s.acceptErrors.Load(),
		Faulted:      s.faulted.Load(),
	}
}

// Close closes the listeners of a server that is not serving. A serving
// server is stopped by canceling the context given to Serve.
func (s *Server) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		close(s.stopping)
		for _, ln := range s.listeners {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Serve accepts connections on every listener until ctx is canceled, then
// shuts down: it stops accepting (new connections are refused), waits up to
// Config.Drain for open connections to finish, closes the rest, and returns
// once every connection goroutine has ended. It returns nil after such a
// shutdown; it can be called once.
func (s *Server) Serve(ctx context.Context) error {
	err := errors.New("server: Serve called twice")
	s.serveOnce.Do(func() { err = s.serve(ctx) })
	return err
}

func (s *Server) serve(ctx context.Context) error {
	select {
	case <-s.stopping:
		return errors.New("server: Serve after Close")
	default:
	}
	for _, ln := range s.listeners {
		s.log.Info("listening", "addr", ln.Addr().String(), "mode", string(s.cfg.Mode))
	}
	if s.cfg.Fault.Kind != "" {
		s.log.Warn("serving with a fault on purpose", "fault", s.cfg.Fault.String())
	}
	s.log.Info("serving", "listeners", len(s.listeners), "mode", string(s.cfg.Mode),
		"max_conns", s.cfg.MaxConns, "idle_timeout", s.cfg.IdleTimeout, "drain", s.cfg.Drain)
	for _, ln := range s.listeners {
		s.loops.Add(1)
		go s.acceptLoop(ln)
	}
	<-ctx.Done()

	closeErr := s.Close()
	s.loops.Wait() // no accept loop adds to s.conn after this
	s.mu.Lock()
	open := s.active
	s.mu.Unlock()
	s.log.Info("shutting down: no longer accepting", "open_conns", open, "drain", s.cfg.Drain)

	done := make(chan struct{})
	go func() { s.conn.Wait(); close(done) }()
	drain := time.NewTimer(s.cfg.Drain)
	defer drain.Stop()
	select {
	case <-done:
	case <-drain.C:
		s.mu.Lock()
		s.forced = true
		n := len(s.conns)
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		if n > 0 {
			s.log.Warn("drain time over: closed open connections", "closed", n, "drain", s.cfg.Drain)
		}
		<-done
	}
	st := s.Stats()
	s.log.Info("stopped", "accepted", st.Accepted, "rejected", st.Rejected,
		"bytes_in", st.BytesIn, "bytes_out", st.BytesOut, "accept_errors", st.AcceptErrors)
	return closeErr
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.loops.Done()
	local := ln.Addr().String()
	if s.cfg.Fault.Kind == NeverAccept {
		<-s.stopping // the kernel queues handshakes until the backlog is full
		return
	}
	var delay time.Duration
	for {
		if d := s.cfg.Fault.Delay; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.stopping:
				t.Stop()
				return
			}
		}
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = max(minAcceptBackoff, min(2*delay, maxAcceptBackoff))
			s.acceptErrors.Add(1)
			s.log.Error("accept failed; backing off", "addr", local, "err", err, "retry_in", delay, "hint", acceptHint(err))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.stopping:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		if s.faultAccepted(c) {
			continue
		}
		s.mu.Lock()
		busy := s.cfg.MaxConns > 0 && s.active >= s.cfg.MaxConns
		lingering := busy && s.rejecting < maxRejecting
		switch {
		case !busy:
			s.active++
			s.conns[c] = struct{}{}
		case lingering:
			s.rejecting++
			s.conns[c] = struct{}{}
		}
		s.mu.Unlock()
		switch {
		case !busy && s.cfg.Fault.Kind == Stall:
			s.accepted.Add(1)
			s.conn.Add(1)
			go s.stall(c)
		case !busy:
			s.accepted.Add(1)
			s.conn.Add(1)
			go s.handle(c)
		case lingering:
			s.rejected.Add(1)
			s.conn.Add(1)
			go s.reject(c)
		default:
			s.rejected.Add(1)
			s.log.Warn("connection rejected: over max conns, too many already being turned away; closed without a message",
				"remote", c.RemoteAddr().String(), "local", local, "max_conns", s.cfg.MaxConns)
			c.Close()
		}
	}
}

// reject tells a client over the limit why, then closes the connection.
func (s *Server) reject(c net.Conn) {
	defer s.conn.Done()
	s.log.Warn("connection rejected: over max conns", "remote", c.RemoteAddr().String(),
		"local", c.LocalAddr().String(), "max_conns", s.cfg.MaxConns)
	msg := fmt.Sprintf(BusyMessage, s.cfg.MaxConns)
	c.SetDeadline(time.Now().Add(linger))
	n, err := io.WriteString(c, msg)
	s.bytesOut.Add(uint64(n))
	if err == nil {
		closeWrite(c)
		io.Copy(io.Discard, c) // until the client closes or the deadline
	}
	s.untrack(c, false)
}

func (s *Server) untrack(c net.Conn, served bool) (forced bool) {
	c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if served {
		s.active--
	} else {
		s.rejecting--
	}
	return s.forced
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
