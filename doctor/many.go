package doctor

import (
	"context"
	"iter"
	"sync"

	"github.com/reach-tools/reach/app"
	"github.com/reach-tools/reach/endpoint"
	"github.com/reach-tools/reach/probe"
)

// ManyAtOnce bounds the endpoints RunMany diagnoses at once: each diagnosis
// runs several probes and reads the socket table and the firewall.
const ManyAtOnce = 8

// RunMany diagnoses every endpoint, ManyAtOnce at a time, so several
// firewalled ones cost one timeout, not one each. It yields each report with
// its index, in the order given, as soon as it and those before it are
// done. Stopping the iteration early cancels the diagnoses still running
// and waits for them to end.
func RunMany(ctx context.Context, endpoints []endpoint.Endpoint, opt Options) iter.Seq2[int, *Report] {
	targets := make([]Layered, len(endpoints))
	for i, ep := range endpoints {
		targets[i] = Layered{Endpoint: ep, TLS: opt.TLS, App: opt.App}
	}
	return RunLayered(ctx, targets, opt)
}

// Layered is an endpoint and the layers above TCP to check on it.
type Layered struct {
	Endpoint endpoint.Endpoint
	TLS      *probe.TLSOptions
	App      *app.Request
	Name     string // how its report names it (Options.Name)
}

// RunLayered is RunMany for targets that each name their own layers above
// TCP (opt.TLS and opt.App are replaced by each target's).
func RunLayered(ctx context.Context, endpoints []Layered, opt Options) iter.Seq2[int, *Report] {
	return func(yield func(int, *Report) bool) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		reports := make([]chan *Report, len(endpoints))
		turn := make(chan struct{}, ManyAtOnce)
		for i, ep := range endpoints {
			reports[i] = make(chan *Report, 1) // buffered: a report nobody reads does not block
			wg.Go(func() {
				turn <- struct{}{}
				defer func() { <-turn }()
				// Canceled, Run returns at once, saying so in its report.
				o := opt
				o.TLS, o.App = ep.TLS, ep.App
				if ep.Name != "" {
					o.Name = ep.Name
				}
				reports[i] <- Run(ctx, ep.Endpoint, o)
			})
		}
		for i := range endpoints {
			if !yield(i, <-reports[i]) {
				return
			}
		}
	}
}
