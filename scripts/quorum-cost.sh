#!/usr/bin/env bash
# Quorum mode's steady-state cost (issue 12, docs/BENCHMARKS.md): N vipd
# nodes in quorum mode (default timings, release build) inside one private
# network namespace, peers on its loopback, each VIP on its own veth; after
# a settling time, measures for each node over a window the quorum bytes it
# sent and received per second (vipd_quorum_bytes_total) and its CPU time
# (utime + stime from /proc/PID/stat). Run for 3 and 7 voters by default.
# Root only; nothing outside the namespace is touched, and the namespace
# is deleted on exit.
#
#   scripts/quorum-cost.sh            # 3 and 7 voters, 30 s window
#   WINDOW=60 scripts/quorum-cost.sh 5
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "quorum-cost.sh: must run as root (network namespaces)" >&2
  exit 1
fi
WINDOW="${WINDOW:-30}"
SETTLE="${SETTLE:-5}"
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(3 7)
cargo build --release -p vipd --locked >&2
VIPD="${CARGO_TARGET_DIR:-$PWD/target}/release/vipd"
TICK=$(getconf CLK_TCK)
NS="vipd-qcost-$$"
KEY="$(mktemp)"
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$KEY"
}
trap cleanup EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
chmod 600 "$KEY"

metric() { # node-index metric-line-prefix
  ip netns exec "$NS" curl -s "http://127.0.0.1:$((2200 + $1))/metrics" |
    awk -v m="$2" 'index($0, m) == 1 { print $2; found = 1 } END { if (!found) print 0 }'
}
cpu_ticks() { # pid
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

printf '%-7s %-6s %-9s %12s %12s %10s\n' voters node role "sent B/s" "recv B/s" "CPU %"
for n in "${SIZES[@]}"; do
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  peers=""
  for i in $(seq 1 "$n"); do
    peers="${peers:+$peers,}n$i=127.0.0.1:$((7480 + i))"
    ip -n "$NS" link add "v$i" type veth peer name "p$i"
    ip -n "$NS" link set "v$i" up
    ip -n "$NS" link set "p$i" up
  done
  declare -a PIDS=()
  for i in $(seq 1 "$n"); do
    ip netns exec "$NS" "$VIPD" run --address 192.0.2.100 --interface "v$i" --node-name "n$i" \
      --coordination quorum --peers "$peers" --peer-key-file "$KEY" \
      --prometheus-server "127.0.0.1:$((2200 + i))" --log-level warn >/dev/null 2>&1 &
    PIDS[i]=$!
    disown "${PIDS[i]}"
  done
  sleep "$SETTLE"
  declare -a S0=() R0=() C0=()
  for i in $(seq 1 "$n"); do
    S0[i]=$(metric "$i" 'vipd_quorum_bytes_total{direction="sent"}')
    R0[i]=$(metric "$i" 'vipd_quorum_bytes_total{direction="received"}')
    C0[i]=$(cpu_ticks "${PIDS[i]}")
  done
  sleep "$WINDOW"
  for i in $(seq 1 "$n"); do
    s=$(metric "$i" 'vipd_quorum_bytes_total{direction="sent"}')
    r=$(metric "$i" 'vipd_quorum_bytes_total{direction="received"}')
    c=$(cpu_ticks "${PIDS[i]}")
    role=$(ip netns exec "$NS" curl -s "http://127.0.0.1:$((2200 + i))/metrics" |
      awk '/^vipd_quorum_role\{/ && $2 == 1 { sub(/.*role="/, ""); sub(/".*/, ""); print }')
    awk -v n="$n" -v i="$i" -v role="$role" -v s="$s" -v s0="${S0[i]}" -v r="$r" -v r0="${R0[i]}" \
      -v c="$c" -v c0="${C0[i]}" -v w="$WINDOW" -v t="$TICK" 'BEGIN {
        printf "%-7s %-6s %-9s %12.0f %12.0f %10.2f\n", n, "n" i, role, (s - s0) / w, (r - r0) / w, 100 * (c - c0) / t / w
      }'
  done
  ip netns pids "$NS" | xargs -r kill -9 2>/dev/null || true
  sleep 0.5
  ip netns del "$NS"
  unset PIDS S0 R0 C0
done
echo "quorum-cost.sh: window ${WINDOW} s after ${SETTLE} s settling; default quorum timings (P 0.6 s, heartbeat 0.1 s)." >&2
