#!/usr/bin/env bash
# Issue 18's sweep of a /24, reach against nmap, side by side. Builds, in
# network namespaces this script creates and deletes (no default routes, no
# link to the root namespace, nothing leaves them):
#
#   lan     a bridge with 198.18.20.0/24: the scanner at .1 and three live
#           hosts, .2 and .3 with open ports, .4 with all six ports closed;
#           every other address is simply not there (no ARP answer).
#   routed  the same hosts on 198.18.22.0/24 behind a router namespace (.1
#           on that bridge); the scanner is 198.18.21.2, the router
#           198.18.21.1 on its side.
#
# and runs, from the scanner's namespace, as root and as an unprivileged user
# (uid/gid 65534 through setpriv, no capabilities):
#
#   nmap -sT -n -T5 --max-retries 0 -p 22,80,443,5432,6379,8080 PREFIX/24
#   reach scan PREFIX/24 -p 22,80,443,5432,6379,8080
#
# RUNS times each (interleaved), printing every time, the medians, the ratios
# reach/nmap, and whether each run was exact: the hosts up and the open and
# closed host:port sets compared with what the script built.
#
#   sudo bench/scan-subnet.sh                 # 5 runs per tool and case
#   sudo RUNS=3 CASES=lan bench/scan-subnet.sh
#
# Settings (environment):
#   RUNS         runs per tool and case (1-15; default 5)
#   CASES        "lan routed" (default), or one of them
#   LIMIT        seconds one run may take before it is stopped (default 60;
#                a stopped run counts as inexact and its time as LIMIT)
#   PING_GROUPS  the scanner namespace's net.ipv4.ping_group_range, which
#                decides whether an unprivileged user may open ICMP echo
#                sockets. A new namespace starts at "1 0" (nobody); the
#                default here, "0 2147483647", is what systemd's sysctl
#                defaults set on most distributions (Debian, Ubuntu, Fedora).
#                PING_GROUPS="1 0" measures an unprivileged reach without them.
#   REACH_FLAGS  extra flags for reach scan (e.g. "--skip-discovery")
#   SAVE         a directory to copy each tool's last output into (CASE.TOOL.out,
#                and .out.bad-RUN for runs that were not exact)
#
# Bounded: at most RUNS x 4 tools x 2 cases runs of at most LIMIT seconds.
# Ctrl-C stops it; the namespaces and servers are removed on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
CASES=${CASES:-lan routed}
LIMIT=${LIMIT:-60}
PING_GROUPS=${PING_GROUPS:-0 2147483647}
read -r -a reach_flags <<<"${REACH_FLAGS:-}"
PORTS=22,80,443,5432,6379,8080

die() { echo "scan-subnet: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root for network namespaces (sudo $0)"
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 15 ] || die "RUNS=$RUNS: give 1 to 15"
[[ "$LIMIT" =~ ^[0-9]+$ ]] && [ "$LIMIT" -ge 1 ] && [ "$LIMIT" -le 600 ] || die "LIMIT=$LIMIT: give 1 to 600 seconds"
for c in $CASES; do [ "$c" = lan ] || [ "$c" = routed ] || die "CASES: unknown case $c (lan, routed)"; done
if ! command -v nmap >/dev/null; then
  echo "scan-subnet: installing nmap (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nmap >/dev/null
fi
for bin in ip setpriv timeout go; do
  command -v "$bin" >/dev/null || die "$bin is missing"
done

tmp=$(mktemp -d)
chmod 755 "$tmp" # the unprivileged runs execute $tmp/reach
id=$$
p=rbench-$id # every namespace of this run is named $p-*
pids=()
cleanup() {
  trap - EXIT INT TERM
  if [ -n "${SAVE:-}" ]; then
    mkdir -p "$SAVE" && cp "$tmp"/*.out* "$SAVE"/ 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $(ip netns list | awk -v p="$p-" 'index($1, p) == 1 {print $1}'); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
exec 3>&2 # the trap may run while a tool's stderr is redirected
trap 'echo "scan-subnet: interrupted; removing the namespaces" >&3; exit 130' INT TERM

go build -o "$tmp/reach" ./cmd/reach
reach=$tmp/reach
echo "nmap: $(nmap --version | head -1)"
echo "reach: $($reach version) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "kernel: $(uname -r), cpus: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg), runs per tool and case: $RUNS"
echo "unprivileged: setpriv --reuid=65534 --regid=65534 --clear-groups; scanner's ping_group_range: $PING_GROUPS"

# ns NAME makes namespace $p-NAME with its loopback up.
ns() {
  ip netns add "$p-$1"
  ip -n "$p-$1" link set lo up
}

# serve NS ADDR... starts one reach server listening on every ADDR inside NS
# and waits (bounded, 5 s) until it listens.
serve() {
  local n=$1; shift
  local args=() log=$tmp/serve-${#pids[@]}.log
  for a in "$@"; do args+=(--listen "$a"); done
  ip netns exec "$n" "$reach" serve "${args[@]}" --log-format json >/dev/null 2>"$log" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -qs '"msg":"serving"' "$log" && return # the server may not have made it yet
    sleep 0.05
  done
  echo "scan-subnet: server did not start in $n:" >&2
  cat "$log" >&2
  exit 1
}

# lan CASE NET GW: a bridge namespace sw-CASE, and hosts CASE-2, -3, -4 on it
# at NET.2-4/24 (route to elsewhere via NET.GW when GW is set), each plugged
# in by a veth. The hosts serve their open ports; the truth goes to
# $tmp/CASE.{up,open,closed}. The caller plugs in the scanner (or router).
lan() {
  local c=$1 net=$2 gw=${3:-}
  ns "sw-$c"
  ip -n "$p-sw-$c" link add br0 type bridge
  ip -n "$p-sw-$c" link set br0 up
  local -A open=([2]="22 80 443" [3]="80 5432 8080" [4]="")
  for h in 2 3 4; do
    ns "$c-$h"
    plug "$c" "$p-$c-$h" "$net.$h/24"
    [ -z "$gw" ] || ip -n "$p-$c-$h" route add 198.18.21.0/24 via "$net.$gw"
    local addrs=()
    for port in ${open[$h]}; do addrs+=("$net.$h:$port"); done
    [ "${#addrs[@]}" = 0 ] || serve "$p-$c-$h" "${addrs[@]}"
  done
  : >"$tmp/$c.open"; : >"$tmp/$c.closed"
  for h in 1 2 3 4; do
    echo "$net.$h" >>"$tmp/$c.up"
    for port in ${PORTS//,/ }; do
      if [[ " ${open[$h]:-} " == *" $port "* ]]; then
        echo "$net.$h:$port" >>"$tmp/$c.open"
      else
        echo "$net.$h:$port" >>"$tmp/$c.closed"
      fi
    done
  done
  for f in up open closed; do sort -V -o "$tmp/$c.$f" "$tmp/$c.$f"; done
}

# plug CASE NS ADDR/LEN connects NS to CASE's bridge with a veth (eth0 in NS)
# and gives it ADDR.
plug() {
  local c=$1 n=$2 addr=$3 port
  plugs=$((plugs + 1)) port=port$plugs
  ip link add eth0 netns "$n" type veth peer name "$port" netns "$p-sw-$c"
  ip -n "$p-sw-$c" link set "$port" master br0 up
  ip -n "$n" addr add "$addr" dev eth0
  ip -n "$n" link set eth0 up
}

# waitup NS IF waits (bounded, 5 s) until IF in NS is operationally up: a
# fresh veth's carrier comes on up to a second later, and the first run
# would pay for it.
waitup() {
  for _ in $(seq 100); do
    ip -n "$1" -o link show dev "$2" | grep -q ' state UP ' && return
    sleep 0.05
  done
  die "$2 in $1 not up after 5s"
}

scanner=()
plugs=0
for c in $CASES; do
  case $c in
  lan)
    lan lan 198.18.20
    ns lan-scan
    plug lan "$p-lan-scan" 198.18.20.1/24
    scanner+=("$p-lan-scan")
    ;;
  routed)
    lan routed 198.18.22 1
    ns routed-router
    ns routed-scan
    plug routed "$p-routed-router" 198.18.22.1/24
    ip link add eth1 netns "$p-routed-router" type veth peer name eth0 netns "$p-routed-scan"
    ip -n "$p-routed-router" addr add 198.18.21.1/24 dev eth1
    ip -n "$p-routed-scan" addr add 198.18.21.2/24 dev eth0
    ip -n "$p-routed-router" link set eth1 up
    ip -n "$p-routed-scan" link set eth0 up
    ip netns exec "$p-routed-router" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$p-routed-scan" route add 198.18.22.0/24 via 198.18.21.1
    scanner+=("$p-routed-scan")
    ;;
  esac
done
for n in $(ip netns list | awk -v p="$p-" 'index($1, p) == 1 {print $1}'); do
  for dev in $(ip -n "$n" -o link show | awk -F': ' '$2 !~ /^lo/ {sub(/@.*/, "", $2); print $2}'); do
    waitup "$n" "$dev"
  done
done
for n in "${scanner[@]}"; do
  ip netns exec "$n" sysctl -qw net.ipv4.ping_group_range="$PING_GROUPS"
done

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# What a run found, one "addr" or "addr:port" a line, sorted: FILE KIND
# (up, open, closed), from nmap -oG or reach --json --all-states output.
nmap_found() {
  case $2 in
  up) awk '/Status: Up/ {print $2}' "$1" ;;
  *) awk -v want="$2" '/Ports:/ {h=$2; n=split($0, f, /[ ,\t]+/)
       for (i=1;i<=n;i++) if (split(f[i], q, "/") >= 3 && q[2] == want) print h":"q[1]}' "$1" ;;
  esac | sort -Vu
}
reach_found() {
  case $2 in
  up) grep '"type":"host"' "$1" | grep '"state":"up"' | sed 's/.*"addr":"\([^"]*\)".*/\1/' ;;
  *) grep '"type":"port"' "$1" | grep "\"state\":\"$2\"" | sed 's/.*"addr":"\([^"]*\)","port":\([0-9]*\).*/\1:\2/' ;;
  esac | sort -Vu
}

# exact TOOL OUT CASE prints nothing when the run found exactly the truth,
# else what differs ("-" missing, "+" extra). No port of a live host is
# filtered; the ports of absent hosts may be (reach lists them with
# --all-states when a host is judged by its ports).
exact() {
  local tool=$1 out=$2 c=$3 kind d
  for kind in up open closed filtered; do
    if [ "$kind" = filtered ]; then
      d=$("${tool}_found" "$out" filtered | awk -F: 'NR == FNR {up[$1]; next} $1 in up {printf "+%s ", $0}' "$tmp/$c.up" -)
    else
      d=$(diff <("${tool}_found" "$out" "$kind") "$tmp/$c.$kind" | awk '/^</ {printf "+%s ", $2} /^>/ {printf "-%s ", $2}')
    fi
    [ -z "$d" ] || printf '%s %s; ' "$kind" "$d"
  done
}

# The four tools. Each is run inside the scanner namespace NS on TARGET,
# its output to OUT; unprivileged ones through setpriv.
unpriv=(setpriv --reuid=65534 --regid=65534 --clear-groups)
run_tool() {
  local tool=$1 n=$2 target=$3 out=$4
  local nmap=(nmap -sT -n -T5 --max-retries 0 -p "$PORTS" "$target" -oG -)
  local rscan=("$reach" scan "$target" -p "$PORTS" "${reach_flags[@]}" --json --all-states)
  case $tool in
  nmap-root) ip netns exec "$n" timeout --foreground "$LIMIT" "${nmap[@]}" ;;
  nmap-user) ip netns exec "$n" timeout --foreground "$LIMIT" "${unpriv[@]}" "${nmap[@]}" ;;
  reach-root) ip netns exec "$n" timeout --foreground "$LIMIT" "${rscan[@]}" ;;
  reach-user) ip netns exec "$n" timeout --foreground "$LIMIT" "${unpriv[@]}" "${rscan[@]}" ;;
  esac >"$out" 2>"$out.err"
}
tools=(nmap-root nmap-user reach-root reach-user)
echo "nmap-*:  nmap -sT -n -T5 --max-retries 0 -p $PORTS PREFIX/24 -oG -"
echo "reach-*: reach scan PREFIX/24 -p $PORTS ${reach_flags[*]:+${reach_flags[*]} }--json --all-states"
echo "*-user:  ip netns exec SCANNER ${unpriv[*]} ...; *-root: ip netns exec SCANNER ..."

failures=0
i=0
printf '\n%-7s %-11s %8s  %-40s %s\n' case tool median "runs (s)" exact
for c in $CASES; do
  n=${scanner[$i]} i=$((i + 1))
  case $c in lan) target=198.18.20.0/24 ;; routed) target=198.18.22.0/24 ;; esac
  for t in "${tools[@]}"; do : >"$tmp/$c.$t.t"; : >"$tmp/$c.$t.bad"; done
  for run in $(seq "$RUNS"); do
    for t in "${tools[@]}"; do
      out=$tmp/$c.$t.out
      t0=$(now)
      rc=0
      run_tool "$t" "$n" "$target" "$out" || rc=$?
      t1=$(now)
      awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}' >>"$tmp/$c.$t.t"
      case $t in nmap-*) tool=nmap ;; *) tool=reach ;; esac
      d=$(exact "$tool" "$out" "$c")
      if [ "$rc" != 0 ]; then
        d="exit status $rc ($(head -c 300 "$out.err" | tr '\n' ' ')); $d"
      fi
      if [ -n "$d" ]; then
        echo "$run: $d" >>"$tmp/$c.$t.bad"
        cp "$out" "$tmp/$c.$t.out.bad-$run"
      fi
    done
  done
  for t in "${tools[@]}"; do
    m=$(median <"$tmp/$c.$t.t")
    eval "med_${c}_${t//-/_}=$m"
    bad=$(wc -l <"$tmp/$c.$t.bad")
    printf '%-7s %-11s %7.3fs  %-40s %d/%d\n' "$c" "$t" "$m" "$(tr '\n' ' ' <"$tmp/$c.$t.t")" $((RUNS - bad)) "$RUNS"
    sed "s/^/          not exact, run /" "$tmp/$c.$t.bad"
    if [ "$t" = reach-root ] || [ "$t" = reach-user ]; then
      [ "$bad" = 0 ] || failures=$((failures + 1))
    fi
  done
  grep '"type":"summary"' "$tmp/$c.reach-root.out" | sed 's/^/          last reach-root summary: /' || true
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }
echo
echo "ratios, reach/nmap (below 1.00x reach is faster):"
for c in $CASES; do
  eval "nr=\$med_${c}_nmap_root nu=\$med_${c}_nmap_user rr=\$med_${c}_reach_root ru=\$med_${c}_reach_user"
  printf '%-7s reach root / nmap root %s   reach user / nmap user %s   reach user / nmap root %s\n' \
    "$c" "$(ratio "$rr" "$nr")" "$(ratio "$ru" "$nu")" "$(ratio "$ru" "$nr")"
done
echo "goals (issue 18): lan reach root <= 1.00x nmap root; reach user < nmap user; routed <= 1.00x nmap"

if [ "$failures" != 0 ]; then
  echo "scan-subnet: reach was not exact in $failures tool/case pair(s)" >&2
  exit 1
fi
