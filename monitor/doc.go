// Package monitor watches endpoints continuously: it parses reach.yaml,
// probes every endpoint on its interval with jitter and bounded concurrency,
// turns results into up/down states with rise/fall hysteresis, asks a
// Diagnoser (the doctor) why an endpoint went down, keeps history in SQLite or
// PostgreSQL, exports Prometheus metrics and sends webhook alerts.
//
// Results from elsewhere (a remote agent) enter through Monitor.Observe with
// their own source name; local probes use source "local".
package monitor
