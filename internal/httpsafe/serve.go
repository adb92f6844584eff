package httpsafe

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options' zero fields.
const (
	// DefaultReadHeaderTimeout bounds the request line and headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds a whole request, body included: an agent's
	// largest batch (8 MiB) needs about 300 KB/s to make it.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds a response, from the end of the request's
	// headers; streams extend it write by write instead.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout bounds the wait for a kept-alive connection's next
	// request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxBody is the largest request body read.
	DefaultMaxBody = 1 << 20
	// DefaultReserve is the descriptors left to the rest of the program
	// when the caller names none.
	DefaultReserve = 64
)

// Options configure Serve. The zero value of every field is its default.
type Options struct {
	ReadHeaderTimeout time.Duration // DefaultReadHeaderTimeout
	ReadTimeout       time.Duration // DefaultReadTimeout
	WriteTimeout      time.Duration // DefaultWriteTimeout
	IdleTimeout       time.Duration // DefaultIdleTimeout
	// MaxBody is the largest request body read, in bytes (DefaultMaxBody).
	// A larger declared body is refused with 413 before the handler runs;
	// a larger chunked one fails the handler's read (*http.MaxBytesError).
	MaxBody int64
	// MaxConns and MaxConnsPerClient cap the open connections in total and
	// per client (an IPv4 address, an IPv6 /64); beyond them a new
	// connection is closed at once.
	// Zero derives them from the file limit (see CapsFor).
	MaxConns, MaxConnsPerClient int
	// Reserve is how many file descriptors the rest of the program needs
	// (probes in flight, the store, the doctor): the derived caps leave
	// them free. Zero is DefaultReserve.
	Reserve int
	// TLSConfig, when set, serves https. The listener given to Serve must
	// be a plain one: connections are counted before the handshake.
	TLSConfig *tls.Config
	// Registerer receives reach_http_connections_open,
	// reach_http_connections_limit and reach_http_connections_refused_total;
	// nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives refused connections (at most one line per
	// LogEvery); nil discards.
	Logger *slog.Logger
}

// ErrOption is wrapped by Serve's error for a negative option.
var ErrOption = errors.New("httpsafe: invalid option")

func (o Options) withDefaults() (Options, error) {
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"ReadHeaderTimeout", o.ReadHeaderTimeout < 0}, {"ReadTimeout", o.ReadTimeout < 0},
		{"WriteTimeout", o.WriteTimeout < 0}, {"IdleTimeout", o.IdleTimeout < 0},
		{"MaxBody", o.MaxBody < 0}, {"MaxConns", o.MaxConns < 0},
		{"MaxConnsPerClient", o.MaxConnsPerClient < 0}, {"Reserve", o.Reserve < 0},
	} {
		if f.neg {
			return o, fmt.Errorf("%w: %s is negative; give a positive value, or 0 for the default",
				ErrOption, f.name)
		}
	}
	o.ReadHeaderTimeout = cmp.Or(o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, DefaultReadTimeout)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, DefaultWriteTimeout)
	o.IdleTimeout = cmp.Or(o.IdleTimeout, DefaultIdleTimeout)
	o.MaxBody = cmp.Or(o.MaxBody, DefaultMaxBody)
	o.Reserve = cmp.Or(o.Reserve, DefaultReserve)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Caps returns the connection caps Serve applies with these options: the
// ones given, the rest derived from this process's file limit.
func (o Options) Caps() Caps {
	c := CapsFromLimit(cmp.Or(o.Reserve, DefaultReserve))
	if o.MaxConns > 0 {
		c.Total = o.MaxConns
		c.PerClient = min(c.PerClient, c.Total)
	}
	if o.MaxConnsPerClient > 0 {
		c.PerClient = min(o.MaxConnsPerClient, c.Total)
	}
	return c
}

// Serve serves h on ln until ctx ends, then shuts down gracefully (for up
// to 5 s; requests' contexts derive from ctx, so streams end at once). It
// closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, opt Options) error {
	opt, err := opt.withDefaults()
	if err != nil {
		ln.Close()
		return err
	}
	caps := opt.Caps()
	lim := newLimitListener(ln, caps, newMetrics(opt.Registerer, caps), opt.Logger)
	srv := &http.Server{
		Handler:           Body(h, opt.MaxBody),
		ReadHeaderTimeout: opt.ReadHeaderTimeout,
		ReadTimeout:       opt.ReadTimeout,
		WriteTimeout:      opt.WriteTimeout,
		IdleTimeout:       opt.IdleTimeout,
		TLSConfig:         opt.TLSConfig,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(lim, "", "")
		} else {
			errc <- srv.Serve(lim)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// Equal compares two secrets in constant time. Both are hashed first, so
// neither the time nor its absence tells the length of either.
func Equal(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
