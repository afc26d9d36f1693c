#!/usr/bin/env bash
# Run ecsync's whole test suite, installing what it needs when missing:
#   moto (local AWS emulator, via pip), git, promtool (via apt, package `prometheus`) and
#   headless Chromium for the dashboard's browser test (via apt, package `chromium`).
#
#   scripts/test.sh [EXTRA cargo test ARGS...]     e.g. scripts/test.sh -- --nocapture
#
# CARGO_TARGET_DIR defaults to $HOME/.cache/ecsync-target (created if missing), shared with
# scripts/demo.sh and .ci/run so the AWS SDK is compiled once.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/ecsync/venv"
# The AWS model ecsync's manifest types are generated from (scripts/gen-ecs-model.py);
# tests/api_model.rs walks it. Bump it, regenerate, and read what the test says is new.
BOTOCORE_VERSION=1.44.8

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'test.sh: %s\n' "$*" >&2
  exit 1
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "missing $*, and no apt-get here to install it: install it by hand"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing $*: run as root or install sudo"
    sudo=(sudo)
  fi
  if [[ "$APT_UPDATED" == 0 ]]; then
    say "apt-get update"
    "${sudo[@]}" apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_moto() {
  if [[ -x "$VENV/bin/moto_server" ]]; then
    PATH="$VENV/bin:$PATH"
  fi
  if command -v moto_server >/dev/null 2>&1 &&
    [[ "$(python3 -c 'import boto3, botocore; print(botocore.__version__)' 2>/dev/null)" == "$BOTOCORE_VERSION" ]]; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip python3-venv
  say "installing moto: pip install 'moto[server]' botocore==$BOTOCORE_VERSION"
  if ! python3 -m pip install --quiet 'moto[server]' "botocore==$BOTOCORE_VERSION"; then
    # No pip, or a system python that refuses pip installs (PEP 668): use a private virtualenv.
    say "falling back to a virtualenv in $VENV"
    python3 -m venv "$VENV" 2>/dev/null || {
      apt_install python3-venv
      python3 -m venv "$VENV"
    }
    "$VENV/bin/python" -m pip install --quiet 'moto[server]' "botocore==$BOTOCORE_VERSION"
    PATH="$VENV/bin:$PATH"
  fi
  hash -r
  command -v moto_server >/dev/null 2>&1 ||
    die "moto is installed but moto_server is not on PATH ($(python3 -m site --user-base)/bin?)"
}

command -v git >/dev/null 2>&1 || apt_install git
command -v promtool >/dev/null 2>&1 || apt_install prometheus
# tests/e2e_dashboard.rs fails without a browser rather than skip.
command -v chromium >/dev/null 2>&1 || apt_install --no-install-recommends chromium
ensure_moto
export PATH # the tests spawn moto_server and python3 from PATH

if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="$HOME/.cache/ecsync-target"
fi
mkdir -p "$CARGO_TARGET_DIR"

cd "$REPO_ROOT"
say "cargo test --all-targets $* (target dir $CARGO_TARGET_DIR)"
exec cargo test --all-targets "$@"
