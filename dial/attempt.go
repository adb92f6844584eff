package dial

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// Attempt is one connection attempt (or one name lookup) made by a Dialer,
// as given to Options.OnAttempt and logged.
type Attempt struct {
	Endpoint endpoint.Endpoint // the endpoint as configured (may be a name)
	Addr     netip.AddrPort    // the address dialled; zero when the lookup failed
	N        int               // attempt number within the dial, from 1; 0 for health checks
	Round    int               // retry round within the dial, from 0
	Class    probe.Class
	Errno    syscall.Errno // 0 when no errno was involved
	RTT      time.Duration // time spent connecting (or looking up)
	Err      error         // *probe.Error; nil when Class is Open
	Ejected  bool          // this failure ejected the endpoint; in Error.Last: ejected now
	Health   bool          // an active health check, not part of a dial
	// NotReady, for a health check with Options.HealthLayers that
	// connected, is the layer that was not ready, its cause and what it
	// said ("redis not-ready: ..."); empty when every layer was.
	NotReady string
}

// Label names the endpoint for people: the configured endpoint, with the
// address used when that was a name.
func (a Attempt) Label() string {
	if !a.Addr.IsValid() {
		return a.Endpoint.String()
	}
	if ap, ok := a.Endpoint.AddrPort(); ok && ap == a.Addr {
		return a.Endpoint.String()
	}
	return a.Endpoint.String() + " (" + a.Addr.String() + ")"
}

// LogValue makes an Attempt a structured log group.
func (a Attempt) LogValue() slog.Value {
	return slog.GroupValue(a.attrs()...)
}

func (a Attempt) attrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("endpoint", a.Endpoint.String()),
		slog.String("class", a.Class.String()),
		slog.Int("attempt", a.N),
		slog.Int("round", a.Round),
		slog.Duration("rtt", a.RTT),
	}
	if a.Addr.IsValid() {
		attrs = append(attrs, slog.String("addr", a.Addr.String()))
	}
	if a.Errno != 0 {
		attrs = append(attrs, slog.Int("errno", int(a.Errno)))
	}
	if a.Err != nil {
		attrs = append(attrs, slog.String("err", a.Err.Error()))
	}
	return attrs
}

// ErrNoEndpoints is returned by a Dialer that was given no endpoints.
var ErrNoEndpoints = errors.New("dial: no endpoints")

// Error is a failed dial. It lists each endpoint's last failure, primary
// first, and unwraps to all of them (and to the context's error when that
// ended the dial), so errors.Is(err, probe.Refused) and
// errors.Is(err, context.DeadlineExceeded) work.
type Error struct {
	Last     []Attempt // each endpoint's last failed attempt, in the order given
	Attempts int       // attempts made by this dial
	Err      error     // the context's error when it ended the dial, else nil
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dial: no endpoint accepted a connection (%d attempt", e.Attempts)
	if e.Attempts != 1 {
		b.WriteString("s")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ", stopped: %v", e.Err)
	}
	b.WriteString(")")
	for i, a := range e.Last {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %s", sep, a.Label(), a.Class)
		if a.Ejected {
			b.WriteString(" (ejected)")
		}
	}
	return b.String()
}

// Unwrap returns every endpoint's last error, then the context's.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, len(e.Last)+1)
	for _, a := range e.Last {
		if a.Err != nil {
			errs = append(errs, a.Err)
		} else {
			errs = append(errs, a.Class)
		}
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
