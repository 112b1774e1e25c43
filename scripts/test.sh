#!/usr/bin/env bash
# README command 2: installs what the tests need, then runs the whole suite:
# unit tests of the sans-IO cores, the 10,000-schedule election simulation,
# etcd backend tests against a real etcd, and (as root) the namespace
# integration scenarios with real vipd processes.
set -euo pipefail
# As root, or through sudo when it is there. VIPD_TEST_UNPRIVILEGED=1 runs
# as the calling user instead: the namespace tests then skip, saying why.
if [ "${VIPD_TEST_UNPRIVILEGED:-0}" != 1 ]; then
  . "$(dirname "$0")/lib/as-root.sh"
  as_root "$0" "$@"
fi
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "$(id -u)" != 0 ]; then
  echo "NOTE: not root: namespace tests will be SKIPPED (they print why). Run as root to execute them." >&2
fi
# Namespace scenarios start real daemons; two at a time is what 2 cores carry.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over all test binaries (cargo prints one per binary,
# the last of which is usually an empty doc-test run).
awk '/^test result:/ { p += $4; f += $6 }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
