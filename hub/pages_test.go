package hub

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/probe"
)

func TestPages(t *testing.T) {
	h, err := New(Config{Token: testToken, Interval: time.Second,
		Hosts:  []HostConfig{{Name: "a", Addr: netip.MustParseAddr("198.18.0.1")}, {Name: "b", Addr: netip.MustParseAddr("198.18.0.2")}},
		Groups: []GroupConfig{{Name: "g", Hosts: []string{"a", "b"}, Ports: []uint16{22}}}})
	if err != nil {
		t.Fatal(err)
	}
	h.HistoryLink = func(s, t string) string { return "/api/endpoints/" + s + "/" + t }
	now := time.Now()
	_, err = h.ingest(context.Background(), agent.Batch{Agent: "a", Dropped: 7, Results: []agent.Result{
		{Target: "b:22", Addr: netip.MustParseAddrPort("198.18.0.2:22"), Class: probe.Open, Time: now.Add(-time.Second)},
		{Target: "b:22", Addr: netip.MustParseAddrPort("198.18.0.2:22"), Class: probe.Refused, Time: now, Error: "dial 198.18.0.2:22: refused"},
	}}, 0, &http.Request{RemoteAddr: "198.18.0.1:40000"})
	if err != nil {
		t.Fatal(err)
	}
	pages := h.Pages()
	matrix := get(t, pages, "/agents/?token=s%20t", "", http.StatusOK)
	for _, want := range []string{
		`data-source="a" data-target="b:22" data-class="refused"`,
		`<th>b:22</th>`, `<th>a:22</th>`,
		`/agents/pair?source=a&amp;target=b%3A22&amp;token=s&#43;t`,
		`/agents/matrix.js?token=s&#43;t`,
		`<td>7</td>`, // a dropped 7 results
		`never`,      // b never reported
	} {
		if !strings.Contains(matrix, want) {
			t.Errorf("matrix page lacks %s\n%s", want, matrix)
		}
	}
	pairPage := get(t, pages, "/agents/pair?source=a&target=b:22", "", http.StatusOK)
	for _, want := range []string{"<b>refused</b>", "the server is not running", "/api/endpoints/a/b:22", "<td>open</td>"} {
		if !strings.Contains(pairPage, want) {
			t.Errorf("pair page lacks %s\n%s", want, pairPage)
		}
	}
	get(t, pages, "/agents/pair?source=b&target=a:22", "", http.StatusNotFound)
	if js := get(t, pages, "/agents/matrix.js", "", http.StatusOK); !strings.Contains(js, "replaceWith") {
		t.Errorf("matrix.js: %s", js)
	}
	// The same refused state since the change, a stale cell after three intervals.
	m := h.Matrix()
	if c := m.Cells[0][1]; c == nil || c.Class != probe.Refused || !c.Since.Equal(now) || c.Stale {
		t.Errorf("a->b:22 cell %+v, want refused since the second result, fresh", c)
	}
	h.mu.Lock()
	h.cells[pair{"a", "b:22"}].last.Time = now.Add(-4 * time.Second)
	h.mu.Unlock()
	if c := h.Matrix().Cells[0][1]; !c.Stale {
		t.Errorf("cell after 4 intervals of silence: %+v, want stale", c)
	}
}
