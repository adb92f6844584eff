package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
)

// A hub config names hosts and what they probe: groups are full meshes,
// pairs single probes. Each agent gets only its own list.
func ExampleHubConfig_ProbeLists() {
	cfg := agent.HubConfig{
		Interval: 10 * time.Second,
		Hosts: []agent.HostConfig{
			{Name: "web-1", Addr: netip.MustParseAddr("198.18.0.1")},
			{Name: "web-2", Addr: netip.MustParseAddr("198.18.0.2")},
			{Name: "db", Addr: netip.MustParseAddr("198.18.0.3")},
		},
		Groups: []agent.GroupConfig{{Name: "web", Hosts: []string{"web-1", "web-2"}, Ports: []uint16{80}}},
		Pairs:  []agent.PairConfig{{From: "web-1", To: "db:5432"}, {From: "web-2", To: "db:5432"}},
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

// Asking the agent on a target host lets the doctor name the exact cause of
// a refused connection (loopback-only, firewall-reject, ...).
func ExampleClient() {
	c, err := agent.NewClient("http://198.18.0.3:7070", os.Getenv("REACH_TOKEN"), &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	report := doctor.Run(context.Background(), endpoint.Endpoint{Host: "198.18.0.3", Port: 5432}, doctor.Options{Remote: c})
	fmt.Println(report.Cause)
}
