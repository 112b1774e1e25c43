# Sourced by the README's scripts: run the calling script as root.
# As root (a fresh Debian machine has no sudo) nothing happens. Otherwise
# the script re-runs itself through sudo, keeping the caller's Rust
# toolchain: sudo resets PATH (secure_path) and HOME, so PATH, CARGO_HOME
# and RUSTUP_HOME are passed explicitly.
# Usage: . "$(dirname "$0")/lib/as-root.sh"; as_root "$0" "$@"   (exits 2 when impossible)
as_root() {
  if [ "$(id -u)" = 0 ]; then
    return 0
  fi
  if ! command -v sudo >/dev/null 2>&1; then
    echo "$(basename "$1"): needs root (network namespaces, packages) and sudo is not installed: run it as root" >&2
    exit 2
  fi
  local script="$1"
  shift
  exec sudo env "PATH=$PATH" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" \
    "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" ${LAB_OUT:+"LAB_OUT=$LAB_OUT"} \
    ${RUST_TEST_THREADS:+"RUST_TEST_THREADS=$RUST_TEST_THREADS"} "$script" "$@"
}
