package hub

import (
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/reach-tools/reach/agent"
)

// matrixPage is the connectivity matrix in the dashboard's look (its
// stylesheet and header): rows and columns grouped by a label of the
// hosts, each cell its class and, when it fails, the doctor's cause.
var matrixPage = template.Must(template.New("matrix").Funcs(pageFuncs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>reach: connectivity matrix</title>
<link rel="stylesheet" href="/static/style.css">
<style>
main.matrix{display:block}
#grid,#agents{width:auto}#grid th,#grid td{border:1px solid #e0e0e0;white-space:nowrap}
#grid td.cell{padding:0;text-align:center}
#grid td.cell a{color:#fff;text-decoration:none;display:block;padding:.3em .6em}
#grid td.cell .cause{display:block;font-size:.8em;opacity:.95}
#grid th.src{text-align:right}
#grid th.grp,#grid tr.grp th{background:#cfd8dc;font-weight:600}
#grid th.grp{text-align:center}
#grid td.none{background:#fafafa;color:#bbb;text-align:center}
#groupby a{margin:0 .2em}#groupby a.active{font-weight:600;color:#222;text-decoration:none}
.legend span{display:inline-block;padding:0 .5em;margin-right:.3em;color:#fff;border-radius:.7em;font-size:.9em}
header a{color:#b0bec5}
</style></head><body>
<header><h1>reach watch</h1><span class="muted">connectivity matrix</span>
<a href="/{{query .Keep}}">← dashboard</a></header>
<main class="matrix">
<p class="muted">Rows probe columns every {{dur .Interval}}. Each cell is the latest result, with the doctor's cause when it fails; grey means no result for three intervals (agent or hub link down). Click a cell for its history. "Results dropped" counts what an agent discarded while it could not reach the hub.</p>
<p id="groupby">Group by:
<a href="{{groupURL .Keep ""}}"{{if not .Group}} class="active"{{end}}>none</a>
{{- range .GroupKeys}} · <a href="{{groupURL $.Keep .}}"{{if eq . $.Group}} class="active"{{end}} data-group-key="{{.}}">{{.}}</a>{{end}}</p>
<div id="matrix">
<table id="grid">
{{if .Group}}<tr><th></th>{{range .ColGroups}}<th class="grp" colspan="{{.N}}" data-group="{{.Value}}">{{$.Group}}: {{.Label}}</th>{{end}}</tr>{{end}}
<tr><th>source \ target</th>{{range .Targets}}<th>{{.}}</th>{{end}}</tr>
{{range $i, $src := .Sources}}{{with index $.RowGroups $i}}<tr class="grp"><th colspan="{{.N}}" data-group="{{.Value}}">{{$.Group}}: {{.Label}}</th></tr>
{{end}}<tr><th class="src">{{$src}}</th>
{{- range $j, $c := index $.Cells $i}}{{$t := index $.Targets $j}}
{{- if $c}}<td class="cell" style="background:{{colour $c}}" title="{{$c.Class}}{{if $c.Cause}} ({{$c.Cause}}){{end}} since {{when $c.Since}}{{if $c.Error}}: {{$c.Error}}{{end}}" data-source="{{$src}}" data-target="{{$t}}" data-class="{{$c.Class}}"{{if $c.Cause}} data-cause="{{$c.Cause}}"{{end}}><a href="{{pairURL $.Keep $src $t}}">{{$c.Class}}{{if $c.Stale}} (stale){{else if and (eq $c.Class "open") $c.RTT}} {{ms $c.RTT}}{{end}}{{if $c.Cause}}<span class="cause">{{$c.Cause}}</span>{{end}}</a></td>
{{- else}}<td class="none">–</td>{{end}}
{{- end}}</tr>
{{end}}</table>
<h2>Agents</h2>
<table id="agents"><tr><th>agent</th><th>address</th><th>labels</th><th>last heard</th><th>results dropped</th></tr>
{{range .Agents}}<tr><th class="src">{{.Name}}</th><td>{{.Addr}}</td><td>{{range $k, $v := .Labels}}<span class="label">{{$k}}={{$v}}</span>{{end}}</td><td>{{if .LastSeen.IsZero}}never{{else}}{{ago .LastSeen}} ago{{end}}</td><td>{{.Dropped}}</td></tr>
{{end}}</table>
</div>
<p class="legend"><span style="background:#2e7d32">open</span><span style="background:#c62828">refused</span><span style="background:#ef6c00">timeout</span><span style="background:#6a1b9a">unreachable</span><span style="background:#1565c0">dns</span><span style="background:#ad1457">reset / closed</span><span style="background:#9e9e9e">stale</span></p>
</main>
<script src="/agents/matrix.js{{query .Keep}}"></script>
</body></html>
`))

// span is a run of rows or columns of one group on the matrix page.
type span struct {
	Value, Label string
	N            int // the columns it spans
}

// spans gives the runs of equal values in groups, labelled for people.
func spans(groups []string, label string) []span {
	var out []span
	for i, g := range groups {
		if i > 0 && groups[i-1] == g {
			out[len(out)-1].N++
			continue
		}
		l := g
		if g == noGroup {
			l = "(no " + label + ")"
		}
		out = append(out, span{Value: g, Label: l, N: 1})
	}
	return out
}

// groupOf is the label the matrix page groups by: ?group=KEY; without it,
// zone when the hosts have that label; ?group= (empty) groups nothing.
func groupOf(r *http.Request, keys []string) string {
	if q := r.URL.Query(); q.Has("group") {
		return q.Get("group")
	}
	if slices.Contains(keys, "zone") {
		return "zone"
	}
	return ""
}

func (h *Hub) serveMatrix(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	m := h.MatrixBy(groupOf(r, h.labelKeys()))
	rows := make([]*span, len(m.Sources)) // a group's row before its first source
	if m.Group != "" {
		i := 0
		for _, s := range spans(m.SourceGroups, m.Group) {
			rows[i] = &span{Value: s.Value, Label: s.Label, N: len(m.Targets) + 1} // across the table
			i += s.N
		}
	}
	_ = matrixPage.Execute(w, struct {
		Matrix
		Agents    []agent.AgentInfo
		Keep      url.Values
		ColGroups []span
		RowGroups []*span
	}{m, h.Agents(), keep(r), spans(m.TargetGroups, m.Group), rows})
}

// labelKeys returns the label names the fleet's hosts have, sorted.
func (h *Hub) labelKeys() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	keys := map[string]bool{}
	for _, hc := range h.members {
		for k := range hc.Labels {
			keys[k] = true
		}
	}
	return slices.Sorted(maps.Keys(keys))
}
