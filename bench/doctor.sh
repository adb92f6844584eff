#!/usr/bin/env bash
# Measures reach check (the doctor): a refused port on this host's loopback
# (issue #4: under 200 ms), and a port a firewall drops, diagnosed from a
# client in a throw-away namespace (within --timeout plus 20%; needs root).
# Only loopback and lab addresses (198.18.0.0/15) are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -count=1 -bench 'BenchmarkRefusedLocal$' -benchtime "${N:-50}x" ./doctor/
go test -run '^$' -count=1 -bench 'BenchmarkDropped' -benchtime 3x ./doctor/
