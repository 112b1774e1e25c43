#!/usr/bin/env bash
# Runs the namespace scenarios RUNS times (default 5) against real vipd
# processes — etcd backend and Kubernetes backend (against the in-repo API
# test server) — and prints per scenario the median and worst of
# every number the tests measure (milliseconds). The source of the tables
# in docs/BENCHMARKS.md.  Usage: sudo scripts/scenario-report.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
scripts/install-deps.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export VIPD_SCENARIO_LOG="$log"
for i in $(seq "$runs"); do
  echo "run $i/$runs..." >&2
  cargo test -q --locked -p vipd --test scenarios --test kube_scenarios -- --test-threads 2 >/dev/null
done
python3 - "$log" "$runs" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
settings = {}
for line in open(sys.argv[1]):
    if not line.startswith("SCENARIO "):
        continue
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    key = f"{kv['name']}/{kv['family']}"
    settings[key] = f"{kv['lease_s']}/{kv['renew_s']}/{kv['retry_s']} s"
    for k, v in kv.items():
        if k.endswith("_ms") and v.isdigit():
            rows[key][k].append(int(v))
print(f"{sys.argv[2]} runs; lease/renew/retry per row; median (worst) in ms\n")
print("| scenario | settings | measurements |")
print("|---|---|---|")
for key in sorted(rows):
    cells = ", ".join(
        f"{k[:-3]} {statistics.median(v):.0f} ({max(v)})" for k, v in rows[key].items()
    )
    print(f"| {key} | {settings[key]} | {cells} |")
PY
