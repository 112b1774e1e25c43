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
# Real BGP routers as peers in namespace tests (crates/netlab/src/router.rs).
# Paths, not `command -v`, for the two in /usr/sbin and /usr/lib/frr: neither
# is on a non-root user's PATH.
routers=()
command -v gobgpd >/dev/null    || routers+=(gobgpd)
[ -x /usr/sbin/bird ]           || routers+=(bird2)
[ -x /usr/lib/frr/bgpd ]        || routers+=(frr)
need+=("${routers[@]}")

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]} — run as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # frr, bird2 and gobgpd are system services that Debian starts (and
  # enables) on installation, in this machine's own network namespace:
  # zebra would take over the host's routing table, bgpd/bird/gobgpd would
  # listen on port 179. The tests run their own instances inside namespaces,
  # so for this install only a policy-rc.d answering 101 ("action
  # forbidden", honoured by invoke-rc.d and deb-systemd-invoke) keeps them
  # stopped, unless the machine has its own policy already (containers do).
  # fresh-debian.sh's chroot shares the host's network namespace: there the
  # guard is what keeps the host clean.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ "${#routers[@]}" -gt 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, scripts/install-deps.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  # Installed just now, for the tests only: not started at the next boot
  # either. (A router that was already here keeps its own settings.)
  if [ "${#routers[@]}" -gt 0 ] && command -v systemctl >/dev/null; then
    for r in "${routers[@]}"; do
      case "$r" in bird2) unit=bird ;; *) unit="$r" ;; esac
      systemctl disable --quiet "$unit" 2>/dev/null || true
    done
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a stable Rust toolchain (rustup, https://rustup.rs) first" >&2
  exit 1
fi

# The chart test (crates/vipd/tests/chart.rs) renders charts/vipd with the
# real helm CLI: no Debian package exists, so a pinned, checksummed copy goes
# to target/tools/helm (scripts/lib/fetch-helm.py; no root needed).
python3 "$(dirname "$0")/lib/fetch-helm.py"
