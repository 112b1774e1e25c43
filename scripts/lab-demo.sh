#!/usr/bin/env bash
# README command 1: `vipd lab demo` end to end. Installs the Debian packages
# the lab needs, builds vipd, runs every fault scenario once against three
# real vipd nodes and etcd in network namespaces, prints the report and
# writes JSON + an SVG timeline (and a PNG when rsvg-convert is there).
# Everything the lab creates lives in namespaces named with a per-run prefix
# and is removed on exit, on error and on Ctrl-C.
set -euo pipefail
# The lab creates network namespaces: as root, or through sudo.
. "$(dirname "$0")/lib/as-root.sh"
as_root "$0" "$@"
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "building vipd (release)..."
cargo build --release --locked -q -p vipd
out="${LAB_OUT:-lab-out}"
mkdir -p "$out"
status=0
./target/release/vipd lab demo --json "$out/demo.json" --svg "$out/demo.svg" --run-dir "$out/logs" || status=$?
if command -v rsvg-convert >/dev/null 2>&1; then
  rsvg-convert -o "$out/demo.png" "$out/demo.svg" && echo "PNG:  $out/demo.png"
else
  echo "SVG:  $out/demo.svg  (apt-get install librsvg2-bin to render it as PNG)"
fi
exit "$status"
