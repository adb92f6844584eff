package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// doctorDiagnoser runs the doctor's whole ladder for the monitor's own
// endpoints: what this host sees.
func doctorDiagnoser(timeout time.Duration, log *slog.Logger) monitor.Diagnoser {
	return monitor.DiagnoserFunc(func(ctx context.Context, ep endpoint.Endpoint) (
		monitor.Diagnosis, error) {
		r := doctor.Run(ctx, ep, doctor.Options{Timeout: timeout, Logger: log})
		raw, err := json.Marshal(r)
		if err != nil {
			return monitor.Diagnosis{}, err
		}
		d := monitor.Diagnosis{Cause: string(r.Cause), Verdict: r.Verdict, Report: raw}
		for _, f := range r.Findings {
			d.Findings = append(d.Findings, finding(f))
		}
		return d, nil
	})
}

func finding(f doctor.Finding) monitor.Finding {
	return monitor.Finding{Cause: string(f.Cause), Confidence: string(f.Confidence),
		Issue: f.Issue, Evidence: f.Evidence, Fix: f.Fix}
}

// sourceDiagnoser explains pairs seen from agents by asking the target
// host's agent (the doctor's findings from that side); the monitor's own
// endpoints go to the embedded Diagnoser.
type sourceDiagnoser struct {
	monitor.Diagnoser
	hub *Hub
}

func (d sourceDiagnoser) DiagnoseFrom(ctx context.Context, source string, ep monitor.Endpoint,
	class probe.Class) (monitor.Diagnosis, error) {
	ap, _ := ep.Target.AddrPort()
	x, err := d.hub.Explain(ctx, Pair{Source: source, Target: ep.Name, Addr: ap, Class: class})
	if errors.Is(err, agent.ErrNoAgent) {
		return monitor.Diagnosis{Cause: string(doctor.Unknown),
			Verdict: fmt.Sprintf("seen from %s: %s; no agent on %s to ask", source, class,
				cmp.Or(x.Host, ap.Addr().String()))}, nil
	}
	if err != nil {
		return monitor.Diagnosis{}, err
	}
	diag := monitor.Diagnosis{Cause: string(doctor.Unknown),
		Verdict: fmt.Sprintf("seen from %s: %s; on %s: %s", source, class, x.Host, x.Detail)}
	for _, f := range x.Findings {
		if diag.Cause == string(doctor.Unknown) {
			diag.Cause = string(f.Cause)
		}
		diag.Findings = append(diag.Findings, finding(f))
	}
	return diag, nil
}
