#!/usr/bin/env bash
# Builds the bare-metal package target/debian/vipd_<version>-1_amd64.deb:
# /usr/bin/vipd, the hardened unit /lib/systemd/system/vipd.service and the
# example /etc/vipd/vipd.env (packaging/, crates/vipd/Cargo.toml
# [package.metadata.deb]). Installs cargo-deb from crates.io when missing.
# Prints the package's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$cargo_deb_version"; then
  echo "installing cargo-deb $cargo_deb_version (crates.io)" >&2
  cargo install --locked --quiet cargo-deb --version "$cargo_deb_version"
fi
# dpkg-shlibdeps (dpkg-dev) turns the binary's shared libraries into the
# package's Depends ($auto).
command -v dpkg-shlibdeps >/dev/null || {
  [ "$(id -u)" = 0 ] || { echo "missing dpkg-dev: run as root or apt-get install dpkg-dev" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
}
# --strip: the shipped binary carries no debug symbols.
cargo deb -p vipd --locked --strip --quiet 2>&1 | tail -n 1
