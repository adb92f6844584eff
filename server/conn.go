package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// conn is one served connection and its byte counts.
type conn struct {
	s        *Server
	c        net.Conn
	idle     time.Duration
	in, out  uint64
	deadline time.Time // last read/write deadline set, to avoid resetting it on every read
}

func (s *Server) handle(c net.Conn) {
	defer s.conn.Done()
	start := time.Now()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("connection accepted", "remote", c.RemoteAddr().String(), "local", c.LocalAddr().String())
	}
	cc := &conn{s: s, c: c, idle: s.cfg.IdleTimeout}
	var err error
	switch s.cfg.Mode {
	case ModeEcho:
		err = cc.echo()
	case ModeDiscard:
		err = cc.discard()
	case ModeBanner:
		err = cc.banner()
	}
	forced := s.untrack(c, true)
	level, end := slog.LevelInfo, "client-closed"
	switch {
	case err == nil:
	case forced && errors.Is(err, net.ErrClosed):
		end = "shutdown"
	case errors.Is(err, os.ErrDeadlineExceeded):
		end = "idle-timeout"
	default:
		level, end = slog.LevelWarn, "error"
	}
	attrs := []slog.Attr{
		slog.String("remote", c.RemoteAddr().String()),
		slog.String("local", c.LocalAddr().String()),
		slog.Duration("duration", time.Since(start)),
		slog.Uint64("bytes_in", cc.in),
		slog.Uint64("bytes_out", cc.out),
		slog.String("end", end),
	}
	if end == "error" {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	s.log.LogAttrs(context.Background(), level, "connection closed", attrs...)
}

// touch pushes the idle deadline forward, at most every tenth of the
// timeout: setting a deadline on every read costs a timer update. So a
// silent client is closed after between 0.9 and 1 times IdleTimeout.
func (cc *conn) touch() {
	idle := cc.idle
	if idle <= 0 {
		return
	}
	now := time.Now()
	if cc.deadline.Sub(now) > idle-idle/10 {
		return
	}
	cc.deadline = now.Add(idle)
	cc.c.SetDeadline(cc.deadline)
}

func (cc *conn) read(b []byte) (int, error) {
	cc.touch()
	n, err := cc.c.Read(b)
	cc.in += uint64(n)
	cc.s.bytesIn.Add(uint64(n))
	return n, err
}

func (cc *conn) write(b []byte) error {
	cc.touch()
	n, err := cc.c.Write(b)
	cc.out += uint64(n)
	cc.s.bytesOut.Add(uint64(n))
	return err
}

// echo sends back what it reads until the client closes (nil) or fails.
func (cc *conn) echo() error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := cc.read(buf)
		if n > 0 {
			if werr := cc.write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// discard reads until the client closes.
func (cc *conn) discard() error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		_, err := cc.read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// banner sends the banner and half-closes, then reads what the client
// sends for a moment (until it closes, or linger passes): closing with
// unread input would send a reset, and the client could lose the banner.
func (cc *conn) banner() error {
	if err := cc.write([]byte(cc.s.cfg.Banner)); err != nil {
		return err
	}
	closeWrite(cc.c)
	cc.idle = 0 // the deadline is linger's now
	cc.c.SetDeadline(time.Now().Add(linger))
	if err := cc.discard(); !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}
