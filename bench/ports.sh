#!/usr/bin/env bash
# Times sockets.List against `ss -ltnp` on a network namespace holding 5,000
# listening sockets (needs root for the namespace). Subtract the
# ip-netns-exec-true case from ss-ltnp: it is the cost of entering the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench '^BenchmarkList$' -benchtime "${BENCHTIME:-50x}" -count "${COUNT:-5}" ./sockets
