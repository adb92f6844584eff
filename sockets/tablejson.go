package sockets

import "encoding/json"

// TableSchema names the JSON form of a Table ("schema" in every encoded
// Table): reach ports --json prints it. schema/reach.ports.v1.json in the
// repository describes it.
const TableSchema = "reach.ports/v1"

// MarshalJSON writes the table with its "schema" first, and Sockets and
// Warnings as [] when empty, never null.
func (t Table) MarshalJSON() ([]byte, error) {
	type plain Table // without this method
	p := plain(t)
	if p.Sockets == nil {
		p.Sockets = []Socket{}
	}
	if p.Warnings == nil {
		p.Warnings = []string{}
	}
	return json.Marshal(struct {
		Schema string `json:"schema"`
		plain
	}{TableSchema, p})
}
