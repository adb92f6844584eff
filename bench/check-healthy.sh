#!/usr/bin/env bash
# A healthy reach check, before and after a change, side by side: builds the
# binary at BASE (a commit; default the one before issue 12's doctor work) and
# at the working tree, starts `reach serve` on a loopback port inside a
# throw-away network namespace, and runs both binaries' `reach check` against
# it alternately, RUNS times each. Prints each median and the ratio. Since
# 52830ec the new check holds an open connection for --hold (default 1s), so a
# healthy check takes about a second and the ratio is about 3; issue 12's goal
# (no slower than before + 5%) is the ratio with NEW_FLAGS="--hold 0" (given
# to the new binary only: without the held connection).
# Needs root (namespace).
# Only the namespace's own loopback is contacted.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE:-6c7911a}
RUNS=${RUNS:-30}
read -r -a new_flags <<<"${NEW_FLAGS:-}"
[ "$(id -u)" = 0 ] || { echo "check-healthy: needs root for a network namespace" >&2; exit 2; }

tmp=$(mktemp -d)
ns=rbench-$$-check
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  git worktree remove --force "$tmp/base" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

git worktree add -q --detach "$tmp/base" "$BASE"
(cd "$tmp/base" && go build -o "$tmp/reach-base" ./cmd/reach)
go build -o "$tmp/reach-new" ./cmd/reach

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$tmp/reach-new" serve --listen 127.0.0.1:7000 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do # bounded: 5 s
  ip netns exec "$ns" "$tmp/reach-new" connect -z 127.0.0.1:7000 >/dev/null 2>&1 && break
  sleep 0.1
done

# ms prints how long one check took, in milliseconds; a check that is not
# reachable (exit status not 0) fails the benchmark.
ms() {
  local t0 t1
  t0=$(date +%s%N)
  ip netns exec "$ns" "$@" >/dev/null || { echo "check-healthy: $1 says unreachable" >&2; exit 1; }
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
: >"$tmp/base.ms"; : >"$tmp/new.ms"
for _ in $(seq "$RUNS"); do
  ms "$tmp/reach-base" check 127.0.0.1:7000 >>"$tmp/base.ms"
  ms "$tmp/reach-new" check 127.0.0.1:7000 "${new_flags[@]}" >>"$tmp/new.ms"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
b=$(median "$tmp/base.ms") n=$(median "$tmp/new.ms")
echo "healthy reach check ${NEW_FLAGS:-}, median of $RUNS: base ($BASE) ${b} ms, new ${n} ms, new/base $(awk -v n="$n" -v b="$b" 'BEGIN{printf "%.2f", n/b}')"
