#!/usr/bin/env bash
# Measures the dialer against refused, dropped and flapping servers, and
# `reach wait`, in throw-away network namespaces (needs root), then prints
# the figures. Only lab addresses (198.18.0.0/15) and the namespaces' own
# loopback are contacted.
#   bash bench/dial.sh            # everything but the ~2 minute naive dial
#   NAIVE=1 bash bench/dial.sh    # also a plain dial of a dropped primary
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bt() { go test -run '^$' -count=1 -timeout 20m ./bench/ "$@"; }

echo "== primary refused, secondary up (5 runs of 2s each)" >&2
bt -bench 'FailoverRefused' -benchtime 2s -count 5 | tee "$out/refused" >&2
echo "== primary dropped (DROP), secondary up" >&2
bt -bench 'DropPrimary/(race|ordered)' -benchtime 5x | tee "$out/drop" >&2
if [ -n "${NAIVE:-}" ]; then
  bt -bench 'DropPrimary/naive' -benchtime 1x -args -naive | tee -a "$out/drop" >&2
fi
echo "== server flapping 1s up / 1s down for 20s, 50 clients" >&2
bt -bench 'FlappingServer' -benchtime 1x | tee "$out/flap" >&2
echo "== reach wait on a port that opens after 2s (5 runs)" >&2
bt -bench 'WaitPortOpensAfter2s' -benchtime 5x | tee "$out/wait" >&2

# Benchmark lines: name N value unit [value unit]...; metric prints the median
# of one unit's values over the runs whose name matches (robust to a busy host).
metric() {
  awk -v name="$1" -v unit="$2" '$1 ~ name { for (i = 3; i < NF; i++) if ($(i+1) == unit) print $i }' "$3" |
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) printf "n/a"; else if (NR % 2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2] + v[NR/2+1]) / 2 }'
}
echo
echo "reach dialer benchmarks ($(date -u +%F), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), $(go version | cut -d' ' -f3)); medians"
for where in loopback veth; do
  printf "refused primary (%s): direct dial of secondary %s µs; dialer %s µs (overhead %s µs, target < 1000); with ejection %s µs\n" "$where" \
    "$(metric "FailoverRefused/$where-" direct-µs "$out/refused")" "$(metric "FailoverRefused/$where-" dialer-µs "$out/refused")" \
    "$(metric "FailoverRefused/$where-" overhead-µs "$out/refused")" "$(metric "FailoverRefused/$where-" ejecting-µs "$out/refused")"
done
printf "dropped primary: race %s ms; ordered with 3s timeout %s ms; naive net.Dial of primary first %s ms\n" \
  "$(metric 'DropPrimary/race-' ms/connect "$out/drop")" \
  "$(metric 'DropPrimary/ordered-3s-' ms/connect "$out/drop")" \
  "$(metric 'DropPrimary/naive-' ms/connect "$out/drop")"
for mode in single-attempt retry-backoff; do
  printf "flapping server, %s: %s%% of %s dials connected (refused %s, other classified %s); p50 %s ms, p99 %s ms\n" "$mode" \
    "$(metric "Flapping.*/$mode-" %ok "$out/flap")" "$(metric "Flapping.*/$mode-" dials "$out/flap")" \
    "$(metric "Flapping.*/$mode-" refused "$out/flap")" "$(metric "Flapping.*/$mode-" other-classified "$out/flap")" \
    "$(metric "Flapping.*/$mode-" p50-ms "$out/flap")" "$(metric "Flapping.*/$mode-" p99-ms "$out/flap")"
done
printf "reach wait: returned %s ms (mean), %s ms (max) after the port opened\n" \
  "$(metric 'WaitPortOpens' ms-after-open "$out/wait")" "$(metric 'WaitPortOpens' max-ms-after-open "$out/wait")"
