package baseline

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/hub"
	"github.com/reach-tools/reach/probe"
)

const hubToken = "a-dashboard-token-of-32-bytes-xx"

// fakeHub serves hub.Matrix values as reach watch does, behind a token.
type fakeHub struct {
	mu    sync.Mutex
	cells map[[2]string]*hub.Cell
	fresh bool // give every cell the time of the request
}

func (f *fakeHub) set(src, tgt string, c probe.Class, rtt time.Duration, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cells[[2]string{src, tgt}] = &hub.Cell{Class: c, RTT: agent.Duration(rtt), Last: last, Since: last}
}

func (f *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+hubToken {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.URL.Path != MatrixPath {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := hub.Matrix{Interval: agent.Duration(100 * time.Millisecond), Sources: []string{"web-1", "db-1"},
		Targets: []string{"db-1:22", "db-1:5432", "web-1:80"}}
	for _, src := range m.Sources {
		row := make([]*hub.Cell, len(m.Targets))
		for j, tgt := range m.Targets {
			if c := f.cells[[2]string{src, tgt}]; c != nil {
				cc := *c
				if f.fresh && !strings.HasPrefix(tgt, "db-1:22") {
					cc.Last = time.Now()
				}
				row[j] = &cc
			}
		}
		m.Cells = append(m.Cells, row)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(m)
}

// The hub's matrix is saved with the agents' classes and connect times;
// diff waits for results newer than its start, reports a pair an agent
// sees broken (with how to ask the target's agent), and counts a pair
// whose agent sent nothing newer as stale.
func TestHubMatrix(t *testing.T) {
	fh := &fakeHub{cells: map[[2]string]*hub.Cell{}}
	old := time.Now().Add(-time.Minute)
	fh.set("web-1", "db-1:22", probe.Refused, 0, old)
	fh.set("web-1", "db-1:5432", probe.Open, 1200*time.Microsecond, old)
	fh.set("db-1", "web-1:80", probe.Open, 800*time.Microsecond, old)
	srv := httptest.NewServer(fh)
	defer srv.Close()
	h := &Hub{URL: srv.URL + "/", Token: hubToken, poll: 10 * time.Millisecond}

	f, err := Save(t.Context(), nil, Options{Hub: h})
	if err != nil {
		t.Fatal(err)
	}
	if f.Hub != srv.URL || len(f.Entries) != 3 {
		t.Fatalf("hub %q, entries %+v", f.Hub, f.Entries)
	}
	if e := f.Entries[1]; e.Source != "web-1" || e.Target.Target != "db-1:5432" || e.Class != probe.Open || e.ConnectMS != 1.2 {
		t.Errorf("entry %+v", e)
	}
	path := filepath.Join(t.TempDir(), "pre.json")
	if err := Write(path, f, false); err != nil {
		t.Fatal(err)
	}
	if f, err = Read(path); err != nil {
		t.Fatal(err)
	}

	fh.set("web-1", "db-1:5432", probe.Timeout, 0, old)
	fh.mu.Lock()
	fh.fresh = true // db-1:22's agent sends nothing newer: stale
	fh.mu.Unlock()
	r, err := Diff(t.Context(), f, DiffOptions{Options: Options{Hub: h}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Broken) != 1 || r.Unchanged != 2 || r.Stale != 1 || r.Total != 3 {
		t.Fatalf("report %+v", r)
	}
	b := r.Broken[0]
	if b.Source != "web-1" || b.Now.Class != probe.Timeout || !strings.Contains(b.Note, "reach check db-1:5432 --hub "+srv.URL) {
		t.Errorf("broken %+v", b)
	}

	// A pair taken out of the hub's config leaves its matrix: gone.
	fh.mu.Lock()
	delete(fh.cells, [2]string{"db-1", "web-1:80"})
	fh.mu.Unlock()
	r, err = Diff(t.Context(), f, DiffOptions{Options: Options{Hub: h}})
	if err != nil || len(r.Gone) != 1 || r.Gone[0].String() != "db-1 → web-1:80" || !r.Differs() {
		t.Errorf("gone: %+v, %v", r, err)
	}

	for _, tc := range []struct {
		h    *Hub
		want string
	}{
		{&Hub{URL: srv.URL, Token: "wrong-token-of-enough-bytes-here"}, "401 unauthorized: set REACH_WATCH_TOKEN"},
		{&Hub{URL: "ftp://hub", Token: hubToken}, "give the hub's base URL"},
		{&Hub{URL: srv.URL + "/nothing", Token: hubToken}, "404"},
	} {
		if _, err := Save(t.Context(), nil, Options{Hub: tc.h}); !errors.Is(err, ErrHub) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.h.URL, err, tc.want)
		}
	}
}
