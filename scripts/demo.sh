#!/usr/bin/env bash
# README command 1 (until `vipd lab demo` lands): a 3-node vipd cluster in
# network namespaces with a real etcd, a client probing the VIP over TCP,
# and three faults — graceful stop, crash, etcd partition of the holder —
# printing who holds the VIP and how long the client went unanswered.
#
# Everything lives in namespaces named vdemo<pid>-*; addresses come from
# 192.0.2.0/24 (TEST-NET-1). The host's own interfaces, routes and firewall
# are never touched, and everything is removed on exit, error or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "the demo creates network namespaces: run it as root" >&2
  exit 1
fi
scripts/install-deps.sh
echo "building vipd (release)..."
cargo build --release --locked -q -p vipd
VIPD="$PWD/target/release/vipd"

P="vdemo$$"
TMP="$(mktemp -d /tmp/vipd-demo.XXXXXX)"
VIP=192.0.2.100
API=192.0.2.2
NODES=(n1 n2 n3)
declare -A IP=([api]=$API [n1]=192.0.2.11 [n2]=192.0.2.12 [n3]=192.0.2.13 [client]=192.0.2.50)

cleanup() {
  set +e
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
  done
  sleep 0.2
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; echo "interrupted: cleaning up"; exit 130' INT TERM

ip netns add "$P-sw"
ip -n "$P-sw" link add br0 type bridge
ip -n "$P-sw" link set br0 up
i=0
for h in api n1 n2 n3 client; do
  ip netns add "$P-$h"
  ip -n "$P-$h" link set lo up
  ip -n "$P-sw" link add "p$i" type veth peer name eth0 netns "$P-$h"
  ip -n "$P-sw" link set "p$i" master br0
  ip -n "$P-sw" link set "p$i" up
  ip -n "$P-$h" addr add "${IP[$h]}/24" dev eth0
  ip -n "$P-$h" link set eth0 up
  i=$((i + 1))
done

echo "starting etcd in $P-api ($API:2379)"
ip netns exec "$P-api" etcd --name demo --data-dir "$TMP/etcd" \
  --listen-client-urls "http://$API:2379" --advertise-client-urls "http://$API:2379" \
  --listen-peer-urls "http://127.0.0.1:2380" --initial-advertise-peer-urls "http://127.0.0.1:2380" \
  --initial-cluster "demo=http://127.0.0.1:2380" >"$TMP/etcd.log" 2>&1 &
disown
for _ in $(seq 50); do
  ETCDCTL_API=3 ip netns exec "$P-api" etcdctl --endpoints "http://$API:2379" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done

# A responder per node: answers every TCP connection on :8080 with its name.
responder() {
  ip netns exec "$P-$1" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(64)
while True:
    c, _ = s.accept(); c.sendall((sys.argv[1] + "\n").encode()); c.close()
' "$1" &
  disown
}

start_vipd() {
  ip netns exec "$P-$1" "$VIPD" run --address "$VIP" --interface eth0 --node-name "$1" \
    --backend etcd --etcd-endpoints "http://$API:2379" --lease-name demo-vip \
    --lease-duration 3 --renew-deadline 2 --retry-period 0.5 --reconcile-period 1 \
    --prometheus-server "${IP[$1]}:2112" >>"$TMP/$1.log" 2>&1 &
  echo $! >"$TMP/$1.pid"
  disown
}

for n in "${NODES[@]}"; do responder "$n"; start_vipd "$n"; done

# The client probe: every 20 ms, who answers on VIP:8080 (or "-").
ip netns exec "$P-client" python3 -u -c '
import socket, sys, time
start = time.monotonic()
last = None
while True:
    t = time.monotonic() - start
    try:
        with socket.create_connection((sys.argv[1], 8080), timeout=0.1) as c:
            who = c.recv(64).decode().strip() or "-"
    except OSError:
        who = "-"
    print(f"{t:.3f} {who}", flush=True)
    time.sleep(0.02)
' "$VIP" >"$TMP/probe.log" 2>/dev/null &
disown

holder() {
  for n in "${NODES[@]}"; do
    if ip -n "$P-$n" -o addr show dev eth0 | grep -q " $VIP/"; then echo "$n"; return; fi
  done
  echo "-"
}
now() { awk '{print $1}' <(tail -n 1 "$TMP/probe.log" 2>/dev/null || echo 0); }

# Longest run of failed probes since probe time $1 (seconds, ms precision).
gap_since() {
  awk -v from="$1" '$1 >= from { if ($2 == "-") { if (!in_gap) { s = $1; in_gap = 1 } }
       else { if (in_gap) { g = $1 - s; if (g > max) max = g; in_gap = 0 } } }
       END { printf "%.0f ms\n", max * 1000 }' "$TMP/probe.log"
}

wait_holder() {
  for _ in $(seq 200); do h=$(holder); [ "$h" != "-" ] && [ "$h" != "${1:-}" ] && { echo "$h"; return; }; sleep 0.05; done
  echo "-"
}

echo
echo "VIP $VIP — lease 3 s / renew deadline 2 s / retry 0.5 s, backend etcd"
h=$(wait_holder)
sleep 1
echo "holder: $h; client is answered by: $(tail -n 1 "$TMP/probe.log" | awk '{print $2}')"

echo
echo "== 1. graceful stop (SIGTERM) of $h"
t=$(now); kill -TERM "$(cat "$TMP/$h.pid")"
nh=$(wait_holder "$h"); sleep 1.5
echo "new holder: $nh; longest client gap: $(gap_since "$t")"
start_vipd "$h"; sleep 1

h=$nh
echo
echo "== 2. crash of $h (SIGKILL + link down)"
t=$(now); kill -KILL "$(cat "$TMP/$h.pid")"; ip -n "$P-$h" link set eth0 down
nh=$(wait_holder "$h"); sleep 1.5
echo "new holder: $nh; longest client gap: $(gap_since "$t")"
ip -n "$P-$h" addr flush dev eth0 2>/dev/null || true
ip -n "$P-$h" addr add "${IP[$h]}/24" dev eth0; ip -n "$P-$h" link set eth0 up
start_vipd "$h"; sleep 1

h=$nh
echo
echo "== 3. $h cut from etcd (nftables in its namespace); peers and client still reach it"
t=$(now)
ip netns exec "$P-$h" nft -f - <<NFT
table inet demo {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr $API drop
  }
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr $API drop
  }
}
NFT
nh=$(wait_holder "$h"); sleep 1.5
echo "new holder: $nh; longest client gap: $(gap_since "$t")"
ip netns exec "$P-$h" nft delete table inet demo
sleep 3
echo "after heal: holder $(holder); $h still runs as a follower (pid $(cat "$TMP/$h.pid") alive: $(kill -0 "$(cat "$TMP/$h.pid")" 2>/dev/null && echo yes || echo no))"

echo
echo "client's neighbour entry for the VIP: $(ip -n "$P-client" neigh show "$VIP" dev eth0)"
for n in "${NODES[@]}"; do
  echo "  $n eth0 MAC: $(ip netns exec "$P-$n" cat /sys/class/net/eth0/address)"
done
echo
echo "demo done; logs were in $TMP (removed on exit)"
