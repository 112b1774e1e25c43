#!/usr/bin/env bash
# Installs the system packages vipd's tests, demo and lab use (Debian, as root).
# Idempotent: skips apt entirely when every tool is already there.
set -euo pipefail

need=()
command -v ip >/dev/null        || need+=(iproute2)
command -v nft >/dev/null       || need+=(nftables)
command -v etcd >/dev/null      || need+=(etcd-server)
command -v etcdctl >/dev/null   || need+=(etcd-client)
command -v protoc >/dev/null    || need+=(protobuf-compiler)
# protoc's well-known types (google/protobuf/*.proto, which etcd-client's
# protos import) are in libprotobuf-dev; --no-install-recommends leaves it out.
[ -e /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
command -v tcpdump >/dev/null   || need+=(tcpdump)
# The Kubernetes scenarios read the lease from inside a namespace with curl
# (a bare Debian has none: found by scripts/fresh-debian.sh).
command -v curl >/dev/null      || need+=(curl)
command -v keepalived >/dev/null || need+=(keepalived)
command -v arping >/dev/null    || need+=(arping)
command -v sysctl >/dev/null    || need+=(procps)
command -v ping >/dev/null      || need+=(iputils-ping)
command -v python3 >/dev/null   || need+=(python3)
command -v cc >/dev/null        || need+=(gcc libc6-dev)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]} — run as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a stable Rust toolchain (rustup, https://rustup.rs) first" >&2
  exit 1
fi

# The chart test (crates/vipd/tests/chart.rs) renders charts/vipd with the
# real helm CLI: no Debian package exists, so a pinned, checksummed copy goes
# to target/tools/helm (scripts/lib/fetch-helm.py; no root needed).
python3 "$(dirname "$0")/lib/fetch-helm.py"
