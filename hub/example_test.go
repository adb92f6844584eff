package hub_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/reach-tools/reach/hub"
)

// A hub config names hosts and what they probe: groups are full meshes,
// pairs single probes. Each agent gets only its own list.
func ExampleConfig_ProbeLists() {
	cfg := hub.Config{
		Interval: 10 * time.Second,
		Hosts: []hub.HostConfig{
			{Name: "web-1", Addr: netip.MustParseAddr("198.18.0.1")},
			{Name: "web-2", Addr: netip.MustParseAddr("198.18.0.2")},
			{Name: "db", Addr: netip.MustParseAddr("198.18.0.3")},
		},
		Groups: []hub.GroupConfig{{Name: "web", Hosts: []string{"web-1", "web-2"}, Ports: []uint16{80}}},
		Pairs:  []hub.PairConfig{{From: "web-1", To: "db:5432"}, {From: "web-2", To: "db:5432"}},
	}
	lists, err := cfg.ProbeLists()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"web-1", "web-2", "db"} {
		fmt.Printf("%s:", name)
		for _, t := range lists[name].Targets {
			fmt.Printf(" %s (%s)", t.ID, t.Addr)
		}
		fmt.Println()
	}
	// Output:
	// web-1: db:5432 (198.18.0.3:5432) web-2:80 (198.18.0.2:80)
	// web-2: db:5432 (198.18.0.3:5432) web-1:80 (198.18.0.1:80)
	// db:
}
