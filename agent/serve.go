package agent

import (
	"context"
	"net"

	"github.com/reach-tools/reach/internal/httpsafe"
)

// ServeOptions bound the agent's HTTP server: timeouts, the largest request
// body, the connection caps and TLS (see Agent.Serve). The zero value is
// the defaults.
type ServeOptions = httpsafe.Options

// maxQueryBody bounds request bodies: every query the agent answers is a
// GET, so a body is never needed.
const maxQueryBody = 64 << 10

// Serve serves Handler on ln until ctx ends, with read, write and idle
// timeouts, request bodies bounded, and open connections capped in total
// and per client address. Unless opt says otherwise, the caps leave the
// probes (Concurrency) and the evidence gathering (64) their descriptors
// under the file limit, and refused connections are counted in the agent's
// /metrics (reach_http_connections_refused_total) and logged.
func (a *Agent) Serve(ctx context.Context, ln net.Listener, opt ServeOptions) error {
	if opt.Reserve == 0 {
		opt.Reserve = a.cfg.Concurrency + httpsafe.DefaultReserve
	}
	if opt.MaxBody == 0 {
		opt.MaxBody = maxQueryBody
	}
	if opt.Registerer == nil {
		opt.Registerer = a.m.reg
	}
	if opt.Logger == nil {
		opt.Logger = a.log
	}
	return httpsafe.Serve(ctx, ln, a.Handler(), opt)
}
