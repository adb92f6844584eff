package hub

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// gatedSink holds each batch until release is closed (or, bounded, for
// wait), then hands it on.
type gatedSink struct {
	next    Sink
	entered chan struct{} // closed when the first batch arrives
	release chan struct{}
	wait    time.Duration
	early   bool // release was closed while a batch waited
}

func (s *gatedSink) Ingest(ctx context.Context, rs []agent.Result) error {
	close(s.entered)
	select {
	case <-s.release:
		s.early = true
	case <-time.After(s.wait):
	}
	return s.next.Ingest(ctx, rs)
}

// Issue 11, row 14: a reload that removes a pair while a batch for it is
// between the hub's check and the monitor must not let the batch bring the
// pair back for good. The sink holds the batch until the reload is done:
// before the fix, the reload (SetConfig, then ForgetSources) finished
// first and the batch re-created the pair in the monitor, its state and
// series kept for ever; now the reload waits for the batch, and forgets it.
func TestReloadDuringIngest(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(pairs string) *monitor.Config {
		t.Helper()
		cfg, err := monitor.ParseConfig("reach.yaml", []byte(`agents:
  token_file: `+tok+`
  hosts: [{name: web-1, addr: 127.0.0.1}, {name: web-2, addr: 127.0.0.2}, {name: db-1, addr: 127.0.0.3}]
  pairs:
`+pairs))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	reg := prometheus.NewRegistry()
	w, err := NewWatch(t.Context(), config("    - {from: web-1, to: \"db-1:5432\"}\n"+
		"    - {from: web-2, to: \"db-1:5432\"}\n"),
		WatchOptions{NoDoctor: true, Monitor: monitor.Options{Metrics: monitor.NewMetrics(reg)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = w.Monitor.Run(ctx) }()
	sink := &gatedSink{next: w.Hub.Sink, entered: make(chan struct{}), release: make(chan struct{}),
		wait: 300 * time.Millisecond}
	w.Hub.Sink = sink

	ingested := make(chan error, 1)
	go func() {
		_, err := w.Hub.ingest(ctx, agent.Batch{Agent: "web-2", Results: []agent.Result{{
			Target: "db-1:5432", Class: probe.Refused, Time: time.Now(),
		}}}, 0, &http.Request{RemoteAddr: "127.0.0.2:40000"})
		ingested <- err
	}()
	select {
	case <-sink.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch never reached the sink")
	}
	// The SIGHUP: web-2's pair goes, while its batch is in the sink.
	if err := w.Reload(config("    - {from: web-1, to: \"db-1:5432\"}\n")); err != nil {
		t.Fatal(err)
	}
	close(sink.release)
	if err := <-ingested; err != nil {
		t.Fatal(err)
	}
	if sink.early {
		t.Error("the reload finished while a batch for a pair it removed was on its way to the monitor")
	}
	for _, st := range w.Monitor.Statuses() {
		if st.Source == "web-2" {
			t.Errorf("the removed pair is back in the monitor: %s/%s %s", st.Source, st.Endpoint, st.State)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == "source" && lp.GetValue() == "web-2"
			}) {
				t.Errorf("the removed pair has a series: %s %v", mf.GetName(), m.GetLabel())
			}
		}
	}
}
