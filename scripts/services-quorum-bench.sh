#!/usr/bin/env bash
# Services on the quorum against Services on leases (issue 13,
# docs/BENCHMARKS.md): 1,000 LoadBalancer Services (500 IPv4 + 500 IPv6),
# five vipd nodes in network namespaces against the in-repo Kubernetes API
# test server, each coordination in turn: steady state, assigner crash,
# 30 s API outage with the busiest node crashing 10 s in, heal. Release
# build. Root only. VIPD_BENCH_SERVICES=N and VIPD_BENCH_COORDINATION=lease|quorum
# narrow a run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "services-quorum-bench.sh: must run as root (network namespaces)" >&2
  exit 1
fi
cargo build --release -p vipd
cargo test --release -p vipd --test services_quorum_bench --no-run
VIPD_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/vipd" cargo test --release -p vipd \
  --test services_quorum_bench -- --ignored --nocapture --test-threads 1
echo
echo "services-quorum-bench.sh: the numbers are the 'BENCH services-quorum ...' lines and the table above;"
echo "they go into docs/BENCHMARKS.md, section 'Services on the quorum'."
