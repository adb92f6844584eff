#!/usr/bin/env bash
# Times the whole `reach ports` command against `ss -ltnp` in a throw-away
# network namespace holding N (default 5,000) listening sockets on its own
# loopback. Needs root, iproute2 and python3 (which holds the sockets).
# "true" is the cost of `ip netns exec` itself.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000} RUNS=${RUNS:-21}
ns=reach-bench-$$
tmp=$(mktemp -d)
holder=
cleanup() {
  if [ -n "$holder" ]; then kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/reach" ./cmd/reach
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" python3 -c '
import socket, sys, time
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16); held.append(s)
print("ready", flush=True)
time.sleep(600)' "$N" >"$tmp/ready" &
holder=$!
for _ in $(seq 100); do grep -q ready "$tmp/ready" && break; sleep 0.1; done
grep -q ready "$tmp/ready" || { echo "listeners did not start" >&2; exit 1; }

# measure prints the best and median wall time and the mean CPU time (user +
# system, all threads) of RUNS runs of a command; CPU time is what to compare
# on a busy machine.
measure() {
  python3 - "$RUNS" "$@" <<'PY'
import resource, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
walls = []
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    walls.append(time.perf_counter() - t)
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / runs
walls.sort()
print(f"wall best {walls[0]*1e3:.1f} ms, median {walls[len(walls)//2]*1e3:.1f} ms; cpu {cpu*1e3:.1f} ms")
PY
}
echo "$N listening sockets, $RUNS runs each, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "reach ports:   $(measure ip netns exec "$ns" "$tmp/reach" ports)"
echo "ss -ltnp:      $(measure ip netns exec "$ns" ss -ltnp)"
echo "reach --json:  $(measure ip netns exec "$ns" "$tmp/reach" ports --json)"
echo "true:          $(measure ip netns exec "$ns" true)"
