#!/usr/bin/env bash
# Services-mode benchmark (issue 5 §7, docs/BENCHMARKS.md): 1,000
# LoadBalancer Services (500 IPv4 + 500 IPv6), five vipd nodes in network
# namespaces against the in-repo Kubernetes API test server. Release build,
# so the numbers are those of the production binary. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "services-bench.sh: must run as root (network namespaces)" >&2
  exit 1
fi
cargo build --release -p vipd
cargo test --release -p vipd --test services_bench --no-run
VIPD_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/vipd" cargo test --release -p vipd --test services_bench -- \
  --ignored --nocapture --test-threads 1
echo
echo "services-bench.sh: the numbers are the 'BENCH services ...' line and the table above;"
echo "they go into docs/BENCHMARKS.md, section 'Services mode benchmark'."
