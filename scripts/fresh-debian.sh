#!/usr/bin/env bash
# Proves the README's set-up on a bare Debian 12, the way a new user meets it.
#
# Builds a minimal Debian 12 root file system with mmdebstrap (minbase:
# apt, dpkg, coreutils, bash, no sudo, no compiler, no git), puts a fresh
# clone of this repository's HEAD in it, and, chrooted in as root, runs the
# README's commands exactly as written. A bare Debian has no Rust toolchain
# and the README asks for one, so the host's rustup toolchain is bind-mounted
# read-only (an empty CARGO_HOME of its own, so every crate is fetched from
# crates.io as a new user's would be). Whatever the scripts forget to install
# fails here.
#
#   scripts/fresh-debian.sh              both README commands (lab demo, whole suite)
#   scripts/fresh-debian.sh --unit       README set-up, then the unit tests only (CI)
#   scripts/fresh-debian.sh --no-tests   no README command (with --deb: the package alone)
#   scripts/fresh-debian.sh --deb FILE   also: install FILE (vipd's .deb) into the same
#                                        root file system (after the tests), run
#                                        `vipd check-config` with the packaged example
#                                        and systemd-analyze on the unit
#
# Everything runs in a private mount namespace (`unshare --mount`): the bind
# mounts, /proc and any network namespace the tests create vanish with it,
# also on failure. Nothing on the host changes but the work directory
# (FRESH_DIR, default target/fresh-debian), which is removed at the end
# unless --keep. Needs root (chroot, mounts) and the network to reach Debian's
# and crates.io's registries.
set -euo pipefail
. "$(dirname "$0")/lib/as-root.sh"
as_root "$0" "$@"
cd "$(dirname "$0")/.."
repo="$(pwd)"

mode=full
deb=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --unit) mode=unit ;;
    --no-tests) mode=none ;;
    --deb) deb="$(realpath "$2")"; shift ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--unit | --no-tests] [--deb FILE] [--keep]" >&2; exit 2 ;;
  esac
  shift
done

rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
[ -d "$rustup_home/toolchains" ] || { echo "no rustup toolchain at $rustup_home" >&2; exit 2; }
command -v mmdebstrap >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}

work="${FRESH_DIR:-$repo/target/fresh-debian}"
rm -rf "$work"
mkdir -p "$work"
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
commit="$(git -C "$repo" rev-parse HEAD)"
echo "fresh-debian: repository $repo at $commit (committed files only), mode $mode"

t0=$(date +%s)
mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/root.tar"
echo "fresh-debian: Debian 12 minbase root file system in $(( $(date +%s) - t0 )) s ($(du -h "$work/root.tar" | cut -f1))"

# A root file system with this machine's network settings and nothing else
# of the host: its apt sources (Debian mirror), DNS, and the local CA
# certificates its egress proxy needs (/usr/local/share/ca-certificates,
# where an administrator puts them; a machine without a proxy has none).
unpack() {
  mkdir -p "$1"
  tar -C "$1" -xf "$work/root.tar"
  rm -f "$1/etc/apt/sources.list"
  cp -a /etc/apt/. "$1/etc/apt/"
  cp -L /etc/resolv.conf "$1/etc/resolv.conf"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"
    chroot "$1" update-ca-certificates >/dev/null
  fi
}

# Runs "$2..." (a bash script string) chrooted into "$1", as root, in a
# private mount namespace with /proc, /sys, /dev, the toolchain and /run.
in_root() {
  local root="$1" script="$2"
  mkdir -p "$root$rustup_home" "$root/opt/host-cargo-bin" "$root/root/.cargo"
  unshare --mount --propagation private bash -euo pipefail -c '
    root="$1"; rustup_home="$2"; cargo_bin="$3"; script="$4"
    # The root must be a mount point: `ip netns` / `ip -n` remount "/" as a
    # slave (MS_SLAVE|MS_REC), which fails with EINVAL on a plain directory.
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    mount --bind "$rustup_home" "$root$rustup_home"
    mount -o remount,bind,ro "$root$rustup_home"
    mount --bind "$cargo_bin" "$root/opt/host-cargo-bin"
    mount -o remount,bind,ro "$root/opt/host-cargo-bin"
    exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
      RUSTUP_HOME="$rustup_home" CARGO_HOME=/root/.cargo RUSTUP_AUTO_INSTALL=0 \
      PATH=/opt/host-cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      bash -euo pipefail -c "$script"
  ' in_root "$root" "$rustup_home" "$cargo_bin" "$script"
}

status=0
root="$work/root"
unpack "$root"
# The checkout a new user has: a clone of HEAD (git runs on the host; the
# root file system has no git, nor needs it).
git clone -q --no-hardlinks "$repo" "$root/root/vipd"
git -C "$root/root/vipd" checkout -q "$commit"

step() { # step NAME SCRIPT: runs SCRIPT in the root file system, timed
  local name="$1" script="$2" s
  s=$(date +%s)
  echo "fresh-debian: >>> $name"
  if in_root "$root" "cd /root/vipd && $script" 2>&1 | tee "$work/$name.log"; then
    echo "fresh-debian: <<< $name: OK in $(( $(date +%s) - s )) s"
  else
    echo "fresh-debian: <<< $name: FAILED after $(( $(date +%s) - s )) s (log: $work/$name.log)"
    status=1
  fi
}

if [ "$mode" = unit ]; then
  # README command 2's own set-up and build, then the unit tests (every
  # library's tests; the namespace suites are CI's host run).
  step readme-test-unit "scripts/test.sh --lib"
elif [ "$mode" = full ]; then
  step readme-command-2 "scripts/test.sh"
  step readme-command-1 "scripts/lab-demo.sh"
fi
grep -h '^summary:' "$work"/readme-*.log 2>/dev/null | sed 's/^/fresh-debian: tests: /' || true
grep -h ' runs, .* failed$' "$work"/readme-*.log 2>/dev/null | sed 's/^/fresh-debian: lab: /' || true

if [ -n "$deb" ]; then
  # The package in the same root file system: installed with apt (which
  # pulls its dependencies), the example configuration checked, and the
  # unit checked by that Debian's own systemd (verify: syntax, paths;
  # security: the exposure score).
  cp "$deb" "$root/root/"
  s=$(date +%s)
  echo "fresh-debian: >>> deb-install $(basename "$deb")"
  if in_root "$root" "
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends /root/$(basename "$deb") systemd >/dev/null
      dpkg -L vipd
      vipd version
      echo '--- vipd check-config with /etc/vipd/vipd.env (its example values):'
      ( set -a; . /etc/vipd/vipd.env; set +a; vipd check-config )
      echo '--- systemd-analyze verify vipd.service:'
      systemd-analyze verify --man=no vipd.service && echo 'verify: OK'
      systemd-analyze security --offline=yes vipd.service | tail -n 1" 2>&1 | tee "$work/deb-install.log"; then
    echo "fresh-debian: <<< deb-install: OK in $(( $(date +%s) - s )) s"
  else
    echo "fresh-debian: <<< deb-install: FAILED (log: $work/deb-install.log)"
    status=1
  fi
fi

echo "fresh-debian: total $(( $(date +%s) - t0 )) s, $([ "$status" = 0 ] && echo PASSED || echo FAILED)"
exit "$status"
