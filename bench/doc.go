// Package bench holds benchmarks that measure reach against the network
// faults it is meant to survive, in throw-away network namespaces
// (internal/netlab). Run them with bench/dial.sh, which prints the figures.
package bench
