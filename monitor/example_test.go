package monitor_test

import (
	"fmt"

	"github.com/reach-tools/reach/monitor"
)

func ExampleParseConfig() {
	cfg, err := monitor.ParseConfig("reach.yaml", []byte(`
alerts: {rise: 1, fall: 2}
endpoints:
  - name: db
    target: 127.0.0.1:5432
    interval: 10s
  - name: telnet
    target: 127.0.0.1:23
    expect: closed
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ep := range cfg.Endpoints {
		fmt.Println(ep.Name, ep.Target, ep.Interval, ep.Timeout, ep.Expect)
	}
	// Output:
	// db 127.0.0.1:5432 10s 3s open
	// telnet 127.0.0.1:23 30s 3s closed
}

func ExampleParseConfig_errors() {
	_, err := monitor.ParseConfig("reach.yaml", []byte(`
endpoints:
  - name: db
    target: 127.0.0.1:5432
    interval: 10x
  - name: db
    target: db.internal
`))
	fmt.Println(err)
	// Output:
	// reach.yaml:5: endpoints[0].interval: "10x" is not a duration; want e.g. 500ms, 10s or 1m
	// reach.yaml:7: endpoints[1].target: "db.internal": missing port; want host:port (e.g. db.internal:443); or a URL such as https://db.internal
}
