package baseline

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/internal/testnet"
	"github.com/reach-tools/reach/monitor"
	"github.com/reach-tools/reach/probe"
)

// Save records what each loopback port did; Diff, with nothing changed,
// finds nothing; a listener closed since is broken (not-listening, from
// the doctor), a closed port now listened on is newly open.
func TestSaveDiffLoopback(t *testing.T) {
	open := testnet.Listen(t)
	closing := testnet.Listen(t)
	closed := testnet.ClosedPort(t)
	targets, err := ParseTargets([]string{open.Addr().String(), closing.Addr().String(), closed.String()})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	opt := Options{Timeout: time.Second, Doctor: doctor.Options{Hold: -1},
		now:  func() time.Time { return at },
		host: func() (string, error) { return "web-1", nil }}
	f, err := Save(t.Context(), targets, opt)
	if err != nil {
		t.Fatal(err)
	}
	if f.Schema != Schema || f.Host != "web-1" || f.TakenAt.Location() != time.UTC || !f.TakenAt.Equal(at) {
		t.Errorf("header %+v", f)
	}
	want := []struct {
		class probe.Class
		cause doctor.Cause
	}{{probe.Open, doctor.Reachable}, {probe.Open, doctor.Reachable}, {probe.Refused, doctor.NotListening}}
	for i, w := range want {
		e := f.Entries[i]
		if e.Class != w.class || !nothingListens(w.cause, e.Cause) || e.Target != targets[i] {
			t.Errorf("entry %d: %+v, want %s %s", i, e, w.class, w.cause)
		}
		if (e.Class == probe.Open) != (e.ConnectMS > 0) {
			t.Errorf("entry %d: connect_ms %v", i, e.ConnectMS)
		}
	}

	r, err := Diff(t.Context(), f, DiffOptions{Options: opt})
	if err != nil {
		t.Fatal(err)
	}
	if r.Differs() || r.Unchanged != 3 || r.Total != 3 || r.Baseline.Host != "web-1" {
		t.Fatalf("nothing changed, yet: %+v", r)
	}

	closing.Close()
	ln, err := net.Listen("tcp", closed.String())
	if err != nil {
		t.Skipf("cannot listen on the closed port again: %v", err)
	}
	defer ln.Close()
	r, err = Diff(t.Context(), f, DiffOptions{Options: opt})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Broken) != 1 || len(r.Opened) != 1 || r.Unchanged != 1 || len(r.Changed)+len(r.Slower) != 0 {
		t.Fatalf("want 1 broken, 1 newly open: %+v", r)
	}
	b := r.Broken[0]
	if b.Target.Target != closing.Addr().String() || b.Now.Class != probe.Refused ||
		!nothingListens(doctor.NotListening, b.Now.Cause) ||
		b.Fix == "" || b.Confidence == "" {
		t.Errorf("broken: %s now %s (%s, %s), fix %q; issue %q, evidence %q", b.Target.Target, b.Now.Class,
			b.Now.Cause, b.Confidence, b.Fix, b.Issue, b.Evidence)
	}
	if o := r.Opened[0]; o.Target.Target != closed.String() || o.Was.Class != probe.Refused || o.Now.Class != probe.Open {
		t.Errorf("newly open: %+v", o)
	}

	// Without diagnosis, no doctor runs: classes only.
	r, err = Diff(t.Context(), f, DiffOptions{Options: Options{Timeout: time.Second, NoDiagnosis: true}})
	if err != nil || len(r.Broken) != 1 || r.Broken[0].Now.Cause != "" || r.Broken[0].Fix != "" || r.Undiagnosed != 1 {
		t.Errorf("no diagnosis: %+v, %v", r, err)
	}
}

// nothingListens says whether the doctor's cause for a port nothing listens
// on is the one wanted, or wrong-port: this host's loopback has listeners
// that are not the test's (other packages' tests, PostgreSQL), and one on a
// port near the test's or with its digits (43163, 36431) makes the doctor
// suggest it, rightly. The diagnosis itself is the doctor's tests' job.
func nothingListens(want, got doctor.Cause) bool {
	return got == want || want == doctor.NotListening && got == doctor.WrongPort
}

// MaxDiagnoses bounds the doctor's runs; the failures past it keep their
// class, and are counted.
func TestSaveMaxDiagnoses(t *testing.T) {
	var args []string
	for range 3 {
		args = append(args, testnet.ClosedPort(t).String())
	}
	targets, _ := ParseTargets(args)
	var mu sync.Mutex
	last := map[string][2]int{}
	progress := func(phase string, done, total int) {
		mu.Lock()
		defer mu.Unlock()
		last[phase] = [2]int{done, total}
	}
	f, err := Save(t.Context(), targets, Options{Timeout: time.Second, MaxDiagnoses: 1, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if last["probing"] != [2]int{3, 3} || last["diagnosing"] != [2]int{1, 1} {
		t.Errorf("progress ended at %v", last)
	}
	if f.Undiagnosed != 2 || f.Entries[0].Cause != doctor.NotListening || f.Entries[1].Cause != "" || f.Entries[2].Cause != "" {
		t.Errorf("undiagnosed %d, entries %+v", f.Undiagnosed, f.Entries)
	}
	for _, e := range f.Entries {
		if e.Class != probe.Refused {
			t.Errorf("%+v", e)
		}
	}
}

func TestSaveRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []Target
	}{
		{"nothing", nil},
		{"twice", []Target{{Target: "127.0.0.1:1"}, {Source: LocalSource, Target: "127.0.0.1:1"}}},
		{"another source", []Target{{Source: "web-1", Target: "127.0.0.1:1"}}},
		{"no port", []Target{{Target: "127.0.0.1"}}},
		{"bad source address", []Target{{Target: "127.0.0.1:1", SourceAddr: "nowhere"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Save(t.Context(), tc.targets, Options{}); !errors.Is(err, ErrTarget) {
				t.Errorf("error %v, want ErrTarget", err)
			}
		})
	}
}

// A cancelled Save saves nothing, rather than a file of "canceled" classes.
func TestSaveCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f, err := Save(ctx, []Target{{Target: testnet.ClosedPort(t).String()}}, Options{})
	if f != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, %v", f, err)
	}
}

// A watch config's endpoints keep their names, timeouts and source
// addresses; the set probes each as the monitor would.
func TestFromWatchConfig(t *testing.T) {
	up := testnet.Listen(t)
	cfg, err := monitor.ParseConfig("reach.yaml", []byte(`
defaults:
  timeout: 2s
endpoints:
  - name: web
    target: `+up.Addr().String()+`
    timeout: 750ms
    source: 127.0.0.1
  - name: db
    target: `+testnet.ClosedPort(t).String()+`
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := FromWatchConfig(cfg)
	if len(ts) != 2 || ts[0].Name != "web" || ts[0].TimeoutMS != 750 || ts[0].SourceAddr != "127.0.0.1" ||
		ts[1].Name != "db" || ts[1].TimeoutMS != 2000 || ts[1].SourceAddr != "" {
		t.Fatalf("targets %+v", ts)
	}
	f, err := Save(t.Context(), ts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Entries[0].Class != probe.Open || f.Entries[1].Class != probe.Refused || f.Entries[1].Cause != doctor.NotListening {
		t.Errorf("entries %+v", f.Entries)
	}
	if s := f.Entries[0].Target.String(); s != "web ("+up.Addr().String()+") from 127.0.0.1" {
		t.Errorf("String() = %q", s)
	}
}
