package hub

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/probe"
)

// Pages serves the read-only dashboard pages under /agents/: the matrix
// (HTML, and JSON at /agents/matrix.json) and one page per pair. They carry
// no credentials of their own: mount them behind the dashboard's auth.
func (h *Hub) Pages() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /agents/{$}", h.serveMatrix)
	mux.HandleFunc("GET /agents/matrix.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, h.MatrixBy(r.URL.Query().Get("group"))) // ?group=zone groups by that label
	})
	mux.HandleFunc("GET /agents/pair", h.servePair)
	mux.HandleFunc("GET /agents/matrix.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write([]byte(matrixJS))
	})
	return mux
}

// classColour colours a class in the matrix: green works, red is refused,
// orange is silence, purple is routing, blue is naming, pink is the peer.
var classColour = map[probe.Class]string{
	probe.Open:            "#2e7d32",
	probe.Refused:         "#c62828",
	probe.Timeout:         "#ef6c00",
	probe.HostUnreachable: "#6a1b9a",
	probe.NetUnreachable:  "#6a1b9a",
	probe.DNS:             "#1565c0",
	probe.Reset:           "#ad1457",
	probe.ClosedByPeer:    "#ad1457",
	probe.LocalError:      "#546e7a",
}

func query(keep url.Values) string {
	if len(keep) == 0 {
		return ""
	}
	return "?" + keep.Encode()
}

var pageFuncs = template.FuncMap{
	"colour": func(c *Cell) string {
		if c.Stale {
			return "#9e9e9e"
		}
		if col, ok := classColour[c.Class]; ok {
			return col
		}
		return "#546e7a"
	},
	"pairURL": func(keep url.Values, source, target string) string {
		q := url.Values{"source": {source}, "target": {target}}
		for k, v := range keep {
			q[k] = v
		}
		return "/agents/pair?" + q.Encode()
	},
	"query": query,
	"groupURL": func(keep url.Values, group string) string {
		q := url.Values{"group": {group}}
		for k, v := range keep {
			q[k] = v
		}
		return "/agents/?" + q.Encode()
	},
	"dur":  func(d agent.Duration) string { return time.Duration(d).String() },
	"ms":   func(d agent.Duration) string { return time.Duration(d).Round(10 * time.Microsecond).String() },
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"ago":  func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
}

// matrixJS updates the matrix live: it fetches the page again and swaps the
// table in, without a reload. A file of its own, so a strict
// Content-Security-Policy (script-src 'self') allows it.
const matrixJS = `setInterval(async () => {
  try {
    const r = await fetch(location.href, {cache: "no-store"});
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    document.getElementById("matrix").replaceWith(doc.getElementById("matrix"));
  } catch (e) {}
}, 2000);
`

// keep is the part of a page's query its links must carry: the dashboard's
// ?token= auth, which links and scripts cannot send as a header.
func keep(r *http.Request) url.Values {
	k := url.Values{}
	if tok := r.URL.Query().Get("token"); tok != "" {
		k.Set("token", tok)
	}
	return k
}

var pairPage = template.Must(template.New("pair").Funcs(pageFuncs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reach: {{.Source}} → {{.Target}}</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f5f5f5}</style>
</head><body>
<p><a href="/agents/{{query .Keep}}">← matrix</a>{{with .Stored}} · <a href="{{.}}">stored history and findings (JSON)</a>{{end}}</p>
<h1 id="pair">{{.Source}} → {{.Target}}</h1>
{{with .Last}}<p><b>{{.Class}}</b> at {{when .Time}} ({{ago .Time}} ago){{if .Error}}: <code>{{.Error}}</code>{{end}}</p>
<p>{{.Class.Explain}}.</p>
{{with .Class.Causes}}<h2>Possible causes, most likely first</h2><ul>{{range .}}<li>{{.}}</li>{{end}}</ul>
<p>To tell them apart, run <code>reach check {{$.Addr}}</code> on {{$.Source}}: with an agent on the target host it names the exact cause.</p>{{end}}
{{else}}<p>No result yet.</p>{{end}}
{{with .Remote}}<h2>What {{.Host}}'s agent sees</h2>
{{if .Err}}<p>Could not ask it: <code>{{.Err}}</code></p>{{else}}<p>{{.Detail}}.</p>
{{if .Findings}}<table><tr><th>Issue</th><th>Evidence</th><th>Fix</th></tr>
{{range .Findings}}<tr><td data-cause="{{.Cause}}">{{.Issue}}</td><td>{{.Evidence}}</td><td>{{.Fix}}</td></tr>
{{end}}</table>{{else}}<p>Nothing on {{.Host}} explains it: look at the path between the two hosts (reach check on {{$.Source}}).</p>{{end}}
{{range .Notes}}<p class="note">{{.}}</p>{{end}}{{end}}{{end}}
<h2>Recent results (newest first)</h2>
<table><tr><th>time (UTC)</th><th>class</th><th>rtt</th><th>address</th><th>error</th></tr>
{{range .History}}<tr><td>{{when .Time}}</td><td>{{.Class}}</td><td>{{ms .RTT}}</td><td>{{.Addr}}</td><td>{{.Error}}</td></tr>
{{end}}</table>
</body></html>
`))

// remoteView is what the target's agent says about a failing pair.
type remoteView struct {
	Host     string
	Err      error
	Detail   string
	Findings []doctor.Finding
	Notes    []string
}

// explain is Explain for the pair page: nil for open pairs and targets
// without an agent.
func (h *Hub) explain(ctx context.Context, res agent.Result) *remoteView {
	if res.Class == probe.Open {
		return nil
	}
	x, err := h.Explain(ctx, Pair{Source: res.Source, Target: res.Target, Addr: res.Addr, Class: res.Class})
	if errors.Is(err, agent.ErrNoAgent) {
		return nil
	}
	return &remoteView{Host: x.Host, Err: err, Detail: x.Detail, Findings: x.Findings, Notes: x.Evidence.Notes}
}

func (h *Hub) servePair(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	src, tgt := q.Get("source"), q.Get("target")
	hist := h.History(src, tgt)
	if hist == nil {
		http.Error(w, "no results for "+src+" → "+tgt, http.StatusNotFound)
		return
	}
	slices.Reverse(hist)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	stored := ""
	if h.HistoryLink != nil {
		stored = h.HistoryLink(src, tgt) + query(keep(r))
	}
	_ = pairPage.Execute(w, struct {
		Source, Target string
		Addr           string
		Last           *agent.Result
		History        []agent.Result
		Keep           url.Values
		Stored         string
		Remote         *remoteView
	}{src, tgt, hist[0].Addr.String(), &hist[0], hist, keep(r), stored, h.explain(r.Context(), hist[0])})
}
