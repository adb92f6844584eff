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
	return s.IngestSeq(ctx, 0, nil, rs)
}

// IngestSeq implements SequencedSink: a replica's monitor returns once the
// shared store has the results (Monitor.Ingest), each stored once by the
// agent's run and its number.
func (s MonitorSink) IngestSeq(ctx context.Context, run int64, seqs []uint64, rs []agent.Result) error {
	if len(rs) == 0 {
		return nil
	}
	reports := make([]monitor.Report, len(rs))
	for i, r := range rs {
		ep := monitor.Endpoint{Name: r.Target, Target: endpoint.FromAddrPort(r.Addr),
			Expect: monitor.ExpectOpen}
		pr := probe.Result{Endpoint: ep.Target, Addr: r.Addr, Class: r.Class,
			Errno: syscall.Errno(r.Errno), RTT: time.Duration(r.RTT)}
		if r.Class != probe.Open {
			pr.Err = &probe.Error{Op: "dial", Addr: r.Addr.String(), Class: r.Class, Errno: pr.Errno,
				Err: fmt.Errorf("seen from %s: %s", r.Source, r.Error)}
		}
		reports[i] = monitor.Report{Endpoint: ep, Time: r.Time, Result: pr}
		if i < len(seqs) {
			reports[i].Run, reports[i].Seq = run, seqs[i]
		}
	}
	// One agent's batch has one source.
	return s.Monitor.Ingest(ctx, rs[0].Source, reports)
}

// NoteChanges implements ChangeSink: each change is recorded in the
// monitor with the agent as its source (Monitor.NoteChange).
func (s MonitorSink) NoteChanges(source string, cs []agent.NetChange, window time.Duration) {
	for _, c := range cs {
		b := netwatch.Burst{First: c.Time, Last: c.Time, Count: c.Count, Changes: c.Changes}
		s.Monitor.NoteChange(source, b, c.Targets, window)
	}
}
