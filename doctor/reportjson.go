package doctor

import "encoding/json"

// ReportSchema names the JSON form of a Report ("schema" in every encoded
// Report): reach check --json prints it, one Report a line.
// schema/reach.check.v1.json in the repository describes it.
const ReportSchema = "reach.check/v1"

// MarshalJSON writes the report with its "schema" first and every list as
// [] when empty, never null: a name that does not resolve has
// "addresses": [], as scripts iterating over them expect.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report // without this method
	p := plain(r)
	p.Addresses = nonNil(p.Addresses)
	p.Findings = nonNil(p.Findings)
	p.Checks = nonNil(p.Checks)
	return json.Marshal(struct {
		Schema string `json:"schema"`
		plain
	}{ReportSchema, p})
}

// MarshalJSON writes an empty Probes as [].
func (a AddrReport) MarshalJSON() ([]byte, error) {
	type plain AddrReport
	p := plain(a)
	p.Probes = nonNil(p.Probes)
	return json.Marshal(p)
}

// MarshalJSON writes an empty Hops as [].
func (p Path) MarshalJSON() ([]byte, error) {
	type plain Path
	q := plain(p)
	q.Hops = nonNil(q.Hops)
	return json.Marshal(q)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
