#!/usr/bin/env bash
# Runs `reach scan` and nmap's connect scan (-sT, what nmap does without
# privileges) side by side on the same targets, in network namespaces this
# script creates and deletes: nothing leaves them. Every run of both tools is
# checked against the set of open ports the script made; any difference is an
# error. Prints the median time of each tool and the ratio.
#
#   sudo bench/scan-vs-nmap.sh            # 5 runs per case
#   sudo RUNS=20 bench/scan-vs-nmap.sh    # the exactness check of issue 5
#
# Cases:
#   loopback  127.0.0.1 in a namespace, ports 1-65535, 25 open
#   drop      a host on a veth link, ports 1-2000: 5 open, 1,995 DROPped
#   subnet    198.18.1.0/24 (256 addresses, 3 exist), ports 1-1000
# nmap uses its fastest settings: -T5 --max-retries 0 (and --min-parallelism
# 2000 for the drop case); reach uses its defaults except --max-retries 0.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
NMAP_SUBNET_LIMIT=${NMAP_SUBNET_LIMIT:-120} # seconds nmap gets for the subnet case

if [ "$(id -u)" != 0 ]; then
  echo "scan-vs-nmap: needs root for network namespaces (sudo $0)" >&2
  exit 2
fi
if ! command -v nmap >/dev/null; then
  echo "scan-vs-nmap: installing nmap (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nmap >/dev/null
fi
for bin in ip iptables go; do
  command -v "$bin" >/dev/null || { echo "scan-vs-nmap: $bin is missing" >&2; exit 2; }
done

tmp=$(mktemp -d)
id=$$
nsl=rbench-$id-lo nsc=rbench-$id-c nss=rbench-$id-s
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$nsl" "$nsc" "$nss"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/reach" ./cmd/reach
reach=$tmp/reach
echo "nmap: $(nmap --version | head -1)"
echo "reach: $($reach version)"
echo "cpus: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg), runs per case: $RUNS"

# serve NS ADDR... starts one reach server listening on every ADDR inside NS,
# waits until it listens, and leaves its sorted ports in $served.
served=
serve() {
  local ns=$1; shift
  local args=() log=$tmp/serve-${#pids[@]}.log
  for a in "$@"; do args+=(--listen "$a"); done
  ip netns exec "$ns" "$reach" serve "${args[@]}" --log-format json >/dev/null 2>"$log" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '"msg":"serving"' "$log" && break
    sleep 0.05
  done
  grep -q '"msg":"serving"' "$log" || { echo "scan-vs-nmap: server did not start:" >&2; cat "$log" >&2; exit 1; }
  served=$(grep '"msg":"listening"' "$log" | grep -o '"addr":"[^"]*"' | sed 's/.*:\([0-9]*\)"$/\1/' | sort -n | tr '\n' ' ')
}

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# open ports found, "addr:port" sorted, from nmap -oG / reach --json output.
nmap_open() { awk '/Ports:/ {h=$2; n=split($0, f, /[ ,]+/); for (i=1;i<=n;i++) if (f[i] ~ /^[0-9]+\/open\//) {split(f[i], p, "/"); print h":"p[1]}}' "$1" | sort -V; }
reach_open() { grep '"type":"port"' "$1" | grep '"state":"open"' | sed 's/.*"addr":"\([^"]*\)","port":\([0-9]*\).*/\1:\2/' | sort -V; }

failures=0
# run_case NAME WANT_FILE NMAP_ARGS -- REACH_ARGS: runs both tools RUNS times
# inside namespace $ns and compares each run with WANT_FILE.
run_case() {
  local name=$1 want=$2 ns=$3; shift 3
  local nargs=() rargs=()
  while [ "$1" != -- ]; do nargs+=("$1"); shift; done
  shift
  rargs=("$@")
  : >"$tmp/$name.nmap.t"; : >"$tmp/$name.reach.t"
  local nbad=0 rbad=0 nslow=0
  for run in $(seq "$RUNS"); do
    t0=$(now)
    ip netns exec "$ns" timeout "${NMAP_LIMIT:-600}" nmap "${nargs[@]}" -oG "$tmp/out.nmap" >/dev/null 2>&1 || true
    t1=$(now)
    ip netns exec "$ns" "$reach" scan "${rargs[@]}" --json >"$tmp/out.reach"
    t2=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}' >>"$tmp/$name.nmap.t"
    awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}' >>"$tmp/$name.reach.t"
    if ! grep -q '^# Nmap done' "$tmp/out.nmap"; then
      nbad=$((nbad + 1)) nslow=$((nslow + 1))
    elif ! diff -q <(nmap_open "$tmp/out.nmap") "$want" >/dev/null; then
      nbad=$((nbad + 1))
      echo "  run $run: nmap open set differs: $(diff <(nmap_open "$tmp/out.nmap") "$want" | grep '^[<>]' | tr '\n' ' ')"
    fi
    if ! diff -q <(reach_open "$tmp/out.reach") "$want" >/dev/null; then
      rbad=$((rbad + 1))
      echo "  run $run: reach open set differs: $(diff <(reach_open "$tmp/out.reach") "$want" | grep '^[<>]' | tr '\n' ' ')"
    fi
  done
  local nm rm
  nm=$(median <"$tmp/$name.nmap.t") rm=$(median <"$tmp/$name.reach.t")
  printf '%-9s nmap %7.3fs  reach %7.3fs  nmap/reach %5.2fx  exact runs: nmap %d/%d, reach %d/%d\n' \
    "$name" "$nm" "$rm" "$(awk -v a="$nm" -v b="$rm" 'BEGIN{print a/b}')" $((RUNS - nbad)) "$RUNS" $((RUNS - rbad)) "$RUNS"
  [ "$nslow" = 0 ] || echo "          nmap was stopped at the ${NMAP_LIMIT:-600}s limit in $nslow of $RUNS runs (its time is a lower bound)"
  echo "$(grep '"type":"summary"' "$tmp/out.reach")" | sed 's/^/          last reach summary: /'
  [ "$rbad" = 0 ] || failures=$((failures + 1))
}

# Case 1: a namespace's loopback, every port.
ip netns add "$nsl"
ip -n "$nsl" link set lo up
serve "$nsl" $(for _ in $(seq 25); do echo 127.0.0.1:0; done)
for p in $served; do echo "127.0.0.1:$p"; done | sort -V >"$tmp/want.lo"
run_case loopback "$tmp/want.lo" "$nsl" -sT -n -Pn -T5 --max-retries 0 -p- 127.0.0.1 -- 127.0.0.1 -p- --max-retries 0

# Case 2: a host on a link, 5 open ports among 1,995 dropped.
ip netns add "$nsc"; ip netns add "$nss"
ip -n "$nsc" link set lo up; ip -n "$nss" link set lo up
ip link add rb$id netns "$nsc" type veth peer name rb$id netns "$nss"
ip -n "$nsc" addr add 198.18.0.1/24 dev rb$id
ip -n "$nss" addr add 198.18.0.2/24 dev rb$id
ip -n "$nsc" link set rb$id up; ip -n "$nss" link set rb$id up
open5="101 202 303 404 505"
serve "$nss" $(for p in $open5; do echo 198.18.0.2:$p; done)
ip netns exec "$nss" iptables -w -A INPUT -d 198.18.0.2 -p tcp -m multiport --dports "$(echo $open5 | tr ' ' ,)" -j ACCEPT
ip netns exec "$nss" iptables -w -A INPUT -d 198.18.0.2 -p tcp --dport 1:2000 -j DROP
for p in $open5; do echo "198.18.0.2:$p"; done | sort -V >"$tmp/want.drop"
run_case drop "$tmp/want.drop" "$nsc" -sT -n -Pn -T5 --max-retries 0 --min-parallelism 2000 -p 1-2000 198.18.0.2 -- 198.18.0.2 -p 1-2000 --max-retries 0

# Case 3: 256 addresses on the link, 3 of which exist (on the server
# namespace), 253 do not answer ARP. The scanner sits outside the /24 so
# every address of the block is a remote one.
ip -n "$nsc" addr add 198.18.2.1/24 dev rb$id
ip -n "$nsc" route add 198.18.1.0/24 dev rb$id src 198.18.2.1
ip -n "$nss" route add 198.18.2.0/24 dev rb$id
: >"$tmp/want.subnet"
for h in 2 3 4; do
  ip -n "$nss" addr add 198.18.1.$h/32 dev rb$id
  serve "$nss" 198.18.1.$h:22 198.18.1.$h:80 198.18.1.$h:443
  printf '198.18.1.%s:%s\n' $h 22 $h 80 $h 443 >>"$tmp/want.subnet"
done
sort -V -o "$tmp/want.subnet" "$tmp/want.subnet"
NMAP_LIMIT=$NMAP_SUBNET_LIMIT run_case subnet "$tmp/want.subnet" "$nsc" -sT -n -Pn -T5 --max-retries 0 -p 1-1000 198.18.1.0/24 -- 198.18.1.0/24 -p 1-1000 --max-retries 0
down=$(grep -c '"state":"host-unreachable"' "$tmp/out.reach" || true)
echo "          last reach run reported $down hosts host-unreachable (want 253)"
[ "$down" = 253 ] || failures=$((failures + 1))

if [ "$failures" != 0 ]; then
  echo "scan-vs-nmap: reach was not exact in $failures case(s)" >&2
  exit 1
fi
