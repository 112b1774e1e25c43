#!/bin/sh
# Runs `vipd lab demo` end to end: installs the system packages it needs
# (Debian), builds vipd, runs every scenario once and renders the timeline.
# Everything the lab creates lives in network namespaces named with a
# per-run prefix and is removed on exit, on error and on Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "lab-demo.sh: run as root (the lab creates network namespaces)" >&2
    exit 2
fi
need=""
for pair in ip:iproute2 nft:nftables etcd:etcd-server etcdctl:etcd-client tcpdump:tcpdump; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
done
if [ -n "$need" ]; then
    echo "installing:$need"
    apt-get install -y $need
fi
cargo build --release -p vipd
out="${LAB_OUT:-lab-out}"
mkdir -p "$out"
status=0
./target/release/vipd lab demo --json "$out/demo.json" --svg "$out/demo.svg" --run-dir "$out/logs" || status=$?
if command -v rsvg-convert >/dev/null 2>&1; then
    rsvg-convert -o "$out/demo.png" "$out/demo.svg" && echo "PNG:  $out/demo.png"
else
    echo "(apt-get install librsvg2-bin to render $out/demo.svg as PNG)"
fi
exit "$status"
