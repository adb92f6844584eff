package hub

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/netwatch"
	"github.com/reach-tools/reach/probe"
)

// MonitorSink stores agent results in a monitor (reach watch) like its own
// probes: each target is an endpoint named by its id ("db:5432") and the
// agent is its source, so history, metrics and alerts cover agents too.
type MonitorSink struct{ Monitor *monitor.Monitor }

// Ingest implements Sink. The diagnoses that state changes start outlive
// the ingest request: they end with the monitor's Run, not with ctx.
func (s MonitorSink) Ingest(ctx context.Context, rs []agent.Result) error {
	ctx = context.WithoutCancel(ctx)
	for _, r := range rs {
		ep := monitor.Endpoint{Name: r.Target, Target: endpoint.FromAddrPort(r.Addr),
			Expect: monitor.ExpectOpen}
		pr := probe.Result{Endpoint: ep.Target, Addr: r.Addr, Class: r.Class,
			Errno: syscall.Errno(r.Errno), RTT: time.Duration(r.RTT)}
		if r.Class != probe.Open {
			pr.Err = &probe.Error{Op: "dial", Addr: r.Addr.String(), Class: r.Class, Errno: pr.Errno,
				Err: fmt.Errorf("seen from %s: %s", r.Source, r.Error)}
		}
		s.Monitor.Observe(ctx, r.Source, ep, r.Time, pr)
	}
	return nil
}

// NoteChanges implements ChangeSink: each change is recorded in the
// monitor with the agent as its source (Monitor.NoteChange).
func (s MonitorSink) NoteChanges(source string, cs []agent.NetChange, window time.Duration) {
	for _, c := range cs {
		b := netwatch.Burst{First: c.Time, Last: c.Time, Count: c.Count, Changes: c.Changes}
		s.Monitor.NoteChange(source, b, c.Targets, window)
	}
}
