package monitor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// flakySink fails its first n deliveries.
type flakySink struct {
	fail int
	got  []Alert
}

func (s *flakySink) Notify(a Alert) { s.got = append(s.got, a) }

func (s *flakySink) Deliver(_ context.Context, a Alert) error {
	if s.fail > 0 {
		s.fail--
		return errors.New("receiver down")
	}
	s.got = append(s.got, a)
	return nil
}

// The replicas' outbox retries an alert whose delivery failed: the retry
// sends what the Alerter decided the first time (it would decide nothing
// the second: the endpoint is down already).
func TestAlertingDeliverRetries(t *testing.T) {
	cfg, err := ParseConfig("t.yaml", []byte("endpoints:\n  - {name: db, target: '127.0.0.1:1'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sink := &flakySink{fail: 1}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	p := NewAlerting(cfg, func() time.Time { return now }, sink)
	down := Alert{ID: 7, Endpoint: "db", Source: LocalSource, State: StateDown, Time: now}
	if err := p.Deliver(t.Context(), down); err == nil {
		t.Fatal("a failed delivery returned nil: the outbox would mark it sent")
	}
	if err := p.Deliver(t.Context(), down); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) != 1 || sink.got[0].Kind != AlertFiring {
		t.Fatalf("delivered %+v, want one firing alert", sink.got)
	}
	up := Alert{ID: 8, Endpoint: "db", Source: LocalSource, State: StateUp, Time: now}
	if err := p.Deliver(t.Context(), up); err != nil || len(sink.got) != 2 || sink.got[1].Kind != AlertResolved {
		t.Fatalf("delivered %+v (%v), want the resolved alert next", sink.got, err)
	}
}

// A replica without the alerts' lease runs no reminders; on taking it, it
// is seeded from the shared statuses and reminds of what is down.
func TestAlertingLease(t *testing.T) {
	cfg, err := ParseConfig("t.yaml", []byte("alerts: {remind_every: 1s}\nendpoints:\n  - {name: db, target: '127.0.0.1:1'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sink := &flakySink{}
	p := NewAlerting(cfg, nil, sink)
	holds := make(chan bool, 1)
	holds <- false
	cur := false
	p.Lease(func() bool {
		select {
		case cur = <-holds:
		default:
		}
		return cur
	}, func() []Status {
		return []Status{{Endpoint: "db", Source: LocalSource, State: StateDown, Since: time.Now().Add(-time.Hour)}}
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(1500 * time.Millisecond) // a tick or more without the lease
	if p.Holding() || len(p.Active()) != 0 {
		t.Fatalf("holding %v, active %+v without the lease", p.Holding(), p.Active())
	}
	holds <- true
	for deadline := time.Now().Add(30 * time.Second); !p.Holding() || len(p.Active()) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never took over")
		}
	}
}

// A replica that does not run the Alerter (another holds the alerts' lease)
// sees no state changes: it judges what is held by the statuses it shows,
// so its dashboard marks an endpoint held by a dependency that is down, as
// the holder's does, and one held by a window.
func TestAlertingHeldWithoutTheLease(t *testing.T) {
	cfg, err := ParseConfig("t.yaml", []byte("endpoints:\n  - {name: db, target: '127.0.0.1:1'}\n"+
		"  - {name: api, target: '127.0.0.1:2', depends_on: [db]}\n  - {name: web, target: '127.0.0.1:3'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := NewAlerting(cfg, nil)
	sts := []Status{{Endpoint: "api", Source: LocalSource, State: StateDown},
		{Endpoint: "db", Source: LocalSource, State: StateDown}, {Endpoint: "web", Source: LocalSource, State: StateUp}}
	p.Lease(func() bool { return false }, func() []Status { return sts })
	now := time.Now()
	if _, err := p.AddWindow(Window{Endpoints: []string{"web"}, Start: now, End: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	held := p.HeldIn(sts)
	if held[0] != "depends on db, which is down" || held[1] != "" || held[2] != "maintenance api-1" {
		t.Errorf("held without the lease: %q, want api by db, web by its window", held)
	}
	if h := p.Held(LocalSource, "api"); h != held[0] {
		t.Errorf("Held(api) = %q, want %q", h, held[0])
	}
}
