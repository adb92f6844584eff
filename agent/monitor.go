package agent

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// MonitorSink stores agent results in a monitor (reach watch) like its own
// probes: each target is an endpoint named by its id ("db:5432") and the
// agent is its source, so history, metrics and alerts cover agents too.
type MonitorSink struct {
	Monitor *monitor.Monitor
	// Ctx is the monitor's run context: it bounds the diagnoses state
	// changes start, which outlive the ingest request. Nil: never canceled.
	Ctx context.Context
}

// Ingest implements Sink.
func (s MonitorSink) Ingest(ctx context.Context, rs []Result) error {
	if s.Ctx != nil {
		ctx = s.Ctx
	} else {
		ctx = context.WithoutCancel(ctx)
	}
	for _, r := range rs {
		ep := monitor.Endpoint{Name: r.Target, Target: endpoint.FromAddrPort(r.Addr), Expect: monitor.ExpectOpen}
		pr := probe.Result{Endpoint: ep.Target, Addr: r.Addr, Class: r.Class, Errno: syscall.Errno(r.Errno), RTT: time.Duration(r.RTT)}
		if r.Class != probe.Open {
			pr.Err = &probe.Error{Op: "dial", Addr: r.Addr.String(), Class: r.Class, Errno: pr.Errno, Err: fmt.Errorf("seen from %s: %s", r.Source, r.Error)}
		}
		s.Monitor.Observe(ctx, r.Source, ep, r.Time, pr)
	}
	return nil
}
