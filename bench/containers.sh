#!/usr/bin/env bash
# Issue 12's numbers in one run (root: the benchmarks build namespaces):
#   - listing 50 namespaces x 100 listeners (goal: under 200 ms),
#   - parsing and walking a kube-proxy nat table of 10,000 Services (under 1 s),
#   - one diagnosis through Docker's NAT into a container,
#   - a healthy reach check before and after (check-healthy.sh).
# Only loopback and lab namespaces (198.18.0.0/15, 198.19.x) are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -count=1 -bench 'BenchmarkListAllNamespaces$' -benchtime 10x ./sockets/
go test -run '^$' -count=1 -bench 'BenchmarkKube10k$' -benchtime 5x ./firewall/
go test -run '^$' -count=1 -bench 'BenchmarkThroughNAT$' -benchtime 10x ./doctor/
RUNS=${RUNS:-15} bash bench/check-healthy.sh
RUNS=${RUNS:-15} NEW_FLAGS="--hold 0" bash bench/check-healthy.sh
