package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/probe"
)

// zonedHub is a fleet of four hosts in two zones (and one without), each
// probing the others' port 22; a sees b:22 refused, with the doctor's cause.
func zonedHub(t *testing.T) *Hub {
	t.Helper()
	host := func(name, addr string, labels map[string]string) HostConfig {
		return HostConfig{Name: name, Addr: netip.MustParseAddr(addr), Labels: labels}
	}
	h, err := New(Config{Token: testToken, Interval: time.Minute, Hosts: []HostConfig{
		host("a", "198.18.0.1", map[string]string{"zone": "eu", "role": "web"}),
		host("b", "198.18.0.2", map[string]string{"zone": "us", "role": "db"}),
		host("c", "198.18.0.3", map[string]string{"zone": "eu", "role": "db"}),
		host("d", "198.18.0.4", nil),
	}, Groups: []GroupConfig{{Name: "all", Hosts: []string{"a", "b", "c", "d"}, Ports: []uint16{22}}}})
	if err != nil {
		t.Fatal(err)
	}
	h.Causes = func(source, target string) string {
		if source == "a" && target == "b:22" {
			return "not-listening"
		}
		return ""
	}
	now := time.Now()
	for _, r := range []struct {
		from, to, addr string
		class          probe.Class
	}{
		{"a", "b:22", "198.18.0.2:22", probe.Refused},
		{"a", "c:22", "198.18.0.3:22", probe.Open},
		{"c", "b:22", "198.18.0.2:22", probe.Open},
		{"d", "a:22", "198.18.0.1:22", probe.Timeout},
	} {
		_, err := h.ingest(context.Background(), agent.Batch{Agent: r.from, Results: []agent.Result{
			{Target: r.to, Addr: netip.MustParseAddrPort(r.addr), Class: r.class, Time: now},
		}}, 0, &http.Request{RemoteAddr: "198.18.0.9:40000"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestMatrixByLabel(t *testing.T) {
	h := zonedHub(t)
	m := h.MatrixBy("zone")
	if want := []string{"a", "c", "b", "d"}; !slices.Equal(m.Sources, want) {
		t.Errorf("sources %v, want %v (eu, us, then the host without a zone)", m.Sources, want)
	}
	if want := []string{"eu", "eu", "us", ""}; !slices.Equal(m.SourceGroups, want) {
		t.Errorf("source groups %v, want %v", m.SourceGroups, want)
	}
	if want := []string{"a:22", "c:22", "b:22", "d:22"}; !slices.Equal(m.Targets, want) {
		t.Errorf("targets %v, want %v", m.Targets, want)
	}
	if c := m.Cells[0][2]; c == nil || c.Class != probe.Refused || c.Cause != "not-listening" {
		t.Errorf("a -> b:22 = %+v, want refused with the doctor's cause", c)
	}
	if c := m.Cells[0][1]; c == nil || c.Cause != "" {
		t.Errorf("a -> c:22 = %+v, want open without a cause", c)
	}
	if !slices.Equal(m.GroupKeys, []string{"role", "zone"}) {
		t.Errorf("group keys %v", m.GroupKeys)
	}
	if m := h.MatrixBy("role"); !slices.Equal(m.Sources, []string{"b", "c", "a", "d"}) {
		t.Errorf("by role: %v", m.Sources)
	}
	if m := h.Matrix(); !slices.Equal(m.Sources, []string{"a", "b", "c", "d"}) || m.SourceGroups != nil {
		t.Errorf("ungrouped: %v %v", m.Sources, m.SourceGroups)
	}
	var js Matrix
	if err := json.Unmarshal([]byte(get(t, h.Pages(), "/agents/matrix.json?group=zone", "", http.StatusOK)), &js); err != nil ||
		!slices.Equal(js.SourceGroups, m.SourceGroups) && !slices.Equal(js.SourceGroups, []string{"eu", "eu", "us", ""}) ||
		js.Cells[0][2].Cause != "not-listening" {
		t.Errorf("matrix.json?group=zone: %+v (%v)", js, err)
	}
}

// node helpers for the DOM checks.
func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, c string) bool {
	v, _ := attr(n, "class")
	return slices.Contains(strings.Fields(v), c)
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

func find(root *html.Node, ok func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for n := range root.Descendants() {
		if n.Type == html.ElementNode && ok(n) {
			out = append(out, n)
		}
	}
	return out
}

// The page groups by zone by default: a header row of column groups, a
// row naming each group of sources before them, and the cause in a
// failing cell; it links the dashboard's stylesheet.
func TestMatrixPageGroupsAndCauses(t *testing.T) {
	h := zonedHub(t)
	doc, err := html.Parse(strings.NewReader(get(t, h.Pages(), "/agents/?token=tok", "", http.StatusOK)))
	if err != nil {
		t.Fatal(err)
	}
	if css := find(doc, func(n *html.Node) bool {
		v, _ := attr(n, "href")
		return n.Data == "link" && v == "/static/style.css"
	}); len(css) != 1 {
		t.Error("the page does not use the dashboard's stylesheet")
	}
	grid := find(doc, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == "grid" })
	if len(grid) != 1 {
		t.Fatal("no #grid table")
	}
	var cols, rows []string
	for _, th := range find(grid[0], func(n *html.Node) bool { return n.Data == "th" && hasClass(n, "grp") }) {
		span, _ := attr(th, "colspan")
		cols = append(cols, text(th)+"×"+span)
	}
	if want := []string{"zone: eu×2", "zone: us×1", "zone: (no zone)×1"}; !slices.Equal(cols, want) {
		t.Errorf("column groups %q, want %q", cols, want)
	}
	var order []string
	for _, tr := range find(grid[0], func(n *html.Node) bool { return n.Data == "tr" }) {
		if hasClass(tr, "grp") {
			rows = append(rows, text(tr))
			order = append(order, "|")
			continue
		}
		if th := find(tr, func(n *html.Node) bool { return n.Data == "th" && hasClass(n, "src") }); len(th) == 1 {
			order = append(order, text(th[0]))
		}
	}
	if want := []string{"zone: eu", "zone: us", "zone: (no zone)"}; !slices.Equal(rows, want) {
		t.Errorf("row groups %q, want %q", rows, want)
	}
	if got, want := strings.Join(order, " "), "| a c | b | d"; got != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	cells := find(grid[0], func(n *html.Node) bool { v, _ := attr(n, "data-cause"); return v == "not-listening" })
	if len(cells) != 1 {
		t.Fatalf("%d cells with data-cause=not-listening, want 1", len(cells))
	}
	src, _ := attr(cells[0], "data-source")
	tgt, _ := attr(cells[0], "data-target")
	cause := find(cells[0], func(n *html.Node) bool { return hasClass(n, "cause") })
	if src != "a" || tgt != "b:22" || len(cause) != 1 || text(cause[0]) != "not-listening" {
		t.Errorf("the cause cell is %s -> %s, showing %q", src, tgt, text(cells[0]))
	}
	links := find(doc, func(n *html.Node) bool { _, ok := attr(n, "data-group-key"); return ok })
	if len(links) != 2 {
		t.Errorf("group-by links: %d, want role and zone", len(links))
	}
	for _, a := range links {
		if href, _ := attr(a, "href"); !strings.Contains(href, "token=tok") {
			t.Errorf("group link %s loses the token", href)
		}
	}

	// ?group= groups nothing; ?group=role groups by role.
	if page := get(t, h.Pages(), "/agents/?group=", "", http.StatusOK); strings.Contains(page, `class="grp"`) {
		t.Error("?group= still groups")
	}
	if page := get(t, h.Pages(), "/agents/?group=role", "", http.StatusOK); !strings.Contains(page, ">role: db</th>") {
		t.Error("?group=role does not group by role")
	}
}

// On a replica, a pair whose agent reports to another replica comes from
// the store, whose copy of its last sample is renewed only at a change of
// class or every 30 s: while the agent calls (any replica), the cell is
// current, not stale; when the agent stops calling, it turns stale.
func TestMatrixSharedPairStaleByAgent(t *testing.T) {
	h, err := New(Config{Token: testToken, Interval: time.Second, Hosts: []HostConfig{
		{Name: "a", Addr: netip.MustParseAddr("198.18.0.1")}, {Name: "b", Addr: netip.MustParseAddr("198.18.0.2")},
	}, Groups: []GroupConfig{{Name: "all", Hosts: []string{"a", "b"}, Ports: []uint16{22}}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h.Shared = func(source, target string) (probe.Class, time.Time, time.Duration, bool) {
		return probe.Open, now.Add(-20 * time.Second), time.Millisecond, true
	}
	cell := func() *Cell {
		m := h.Matrix()
		for i, src := range m.Sources {
			for j, tg := range m.Targets {
				if src == "a" && tg == "b:22" {
					return m.Cells[i][j]
				}
			}
		}
		t.Fatalf("no cell a -> b:22 in %+v", m)
		return nil
	}
	if c := cell(); c == nil || !c.Stale {
		t.Errorf("agent a never heard: cell %+v, want stale", c)
	}
	h.NoteSeen("a", time.Now())
	if c := cell(); c == nil || c.Stale || c.Class != probe.Open {
		t.Errorf("agent a called a second ago: cell %+v, want open, not stale", c)
	}
}
