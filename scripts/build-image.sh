#!/usr/bin/env bash
# Builds vipd's container image with podman from ./Containerfile and writes,
# under target/image/:
#   rootfs/                       the staged image contents (build context)
#   vipd-image.tar                `podman save` of the image (oci-archive)
#   sbom.cdx.json                 CycloneDX 1.5 SBOM (scripts/lib/sbom.py)
# Tags it ghcr.io/vipd/vipd:v<version> — the name `vipd manifest` puts in its
# manifests — and prints the tag on its last line. As root; installs podman,
# runc and libcap2-bin when missing. Podman runs with runc and no default
# ulimits (../shared/NETLAB-TIPS.md: crun cannot start containers here);
# scripts/lib/containers.conf says so, and CONTAINERS_CONF points at it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v setcap >/dev/null || need+=(libcap2-bin)
command -v objcopy >/dev/null || need+=(binutils)
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing: ${need[*]} (run as root)" >&2; exit 1; }
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export CONTAINERS_CONF="$repo/scripts/lib/containers.conf"

version="$(cargo metadata --no-deps --format-version 1 --locked \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "vipd"))')"
tag="ghcr.io/vipd/vipd:v$version"

cargo build --release --locked -p vipd --quiet
out="$repo/target/image"
rm -rf "$out"
rootfs="$out/rootfs"
mkdir -p "$rootfs/usr/bin" "$rootfs/lib/x86_64-linux-gnu" "$rootfs/lib64" \
  "$rootfs/etc/ssl/certs" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"

objcopy --strip-all target/release/vipd "$rootfs/usr/bin/vipd"
chmod 755 "$rootfs/usr/bin/vipd"
# File capabilities: a non-root user gets NET_ADMIN/NET_RAW on exec only
# through them (Kubernetes sets no ambient capabilities). Permitted, not
# effective: with the effective bit, exec fails outright when the container
# lacks either one (so `vipd manifest` could not run with a runtime's
# default capabilities); vipd raises them itself (src/sys.rs).
setcap cap_net_admin,cap_net_raw=p "$rootfs/usr/bin/vipd"

# The shared libraries the binary links, from ldd (the loader at its
# ABI path, the rest in the multiarch directory its built-in path searches).
libs=()
while read -r lib; do
  case "$lib" in
    */ld-linux-x86-64.so.2) cp -L "$lib" "$rootfs/lib64/ld-linux-x86-64.so.2" ;;
    *) cp -L "$lib" "$rootfs/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
  esac
  libs+=("$lib")
done < <(ldd "$rootfs/usr/bin/vipd" | grep -o '/[^ ]*')

# The CA bundle from Debian's Mozilla certificates only — never the host's
# /etc/ssl/certs, which may hold local additions (this machine's egress proxy).
cat /usr/share/ca-certificates/mozilla/*.crt > "$rootfs/etc/ssl/certs/ca-certificates.crt"

printf 'root:x:0:0:root:/:/nonexistent\nvipd:x:65532:65532:vipd:/:/nonexistent\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nvipd:x:65532:\n' > "$rootfs/etc/group"
printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"

created="$(date -u -d "@$(git log -1 --format=%ct)" +%Y-%m-%dT%H:%M:%SZ)"
podman build --quiet -f Containerfile \
  --label org.opencontainers.image.title=vipd \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$(git rev-parse HEAD)" \
  --label org.opencontainers.image.created="$created" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  -t "$tag" "$out" >/dev/null
podman save --quiet --format oci-archive -o "$out/vipd-image.tar" "$tag"

python3 scripts/lib/sbom.py --rootfs "$rootfs" --image "$tag" \
  --image-id "$(podman image inspect --format '{{.Id}}' "$tag")" \
  --libs "${libs[@]}" > "$out/sbom.cdx.json"

size="$(podman image inspect --format '{{.Size}}' "$tag")"
echo "image $tag: $((size / 1024)) KiB ($(du -k "$out/vipd-image.tar" | cut -f1) KiB saved), SBOM $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$out/sbom.cdx.json") components in target/image/sbom.cdx.json"
echo "$tag"
