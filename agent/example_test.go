package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/reach-tools/reach/agent"
	"github.com/reach-tools/reach/doctor"
	"github.com/reach-tools/reach/endpoint"
)

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
