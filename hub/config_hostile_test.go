package hub

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Issue 11, row 7: a host named local was valid, and its agent's results
// were taken for the hub's own probes and dropped without a word.
func TestHostileReservedHostName(t *testing.T) {
	var doc struct {
		Agents yaml.Node `yaml:"agents"`
	}
	src := "agents:\n  hosts:\n    - {name: web, addr: 198.18.0.1}\n    - {name: local, addr: 198.18.0.2}\n" +
		"  groups: [{name: g, hosts: [web, local], ports: [22]}]\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	_, err := ParseConfig(&doc.Agents)
	want := `line 4: hosts[1]: name "local" is reserved`
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant ErrConfig containing %q", err, want)
	}
	// A config built in code is refused too.
	c := Config{Hosts: []HostConfig{{Name: "local", Addr: netip.MustParseAddr("198.18.0.2")}}}
	if _, err := c.ProbeLists(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `hosts[0]: name "local" is reserved`) {
		t.Fatalf("ProbeLists: got %v", err)
	}
}
