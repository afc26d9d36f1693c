#!/usr/bin/env bash
# The local demo: ecsync reconciling manifests/demo against a local AWS emulator (moto).
#
#   scripts/demo.sh [EXTRA ecsync run ARGS...]
#
# 1. installs moto (`pip install 'moto[server]'`) if moto_server is missing;
# 2. starts moto_server on 127.0.0.1:${ECSYNC_DEMO_PORT:-5555} (stopped when this script exits);
# 3. seeds it with scripts/seed_demo.py: cluster `demo`, an ALB `web` whose port-80 listener
#    forwards to target group `web-ec2`, the legacy fleet there (three instances tagged app=web
#    and the Auto Scaling group `web-asg` of two more), the CloudWatch alarm `web-5xx` that gates the migration, and an `ip`
#    target group `web-ecs` for the ECS service;
# 4. builds ecsync and runs
#      ecsync run --repo REPO_ROOT --path manifests/demo --interval 10s --log-format text ARGS...
#    with the AWS environment pointing at moto (never at a real AWS account).
#
# Settings (environment):
#   ECSYNC_DEMO_PORT    moto's port (default 5555)
#   ECSYNC_DEMO_NO_RUN  set to 1 to stop after seeding and keep moto up until Ctrl-C, to run
#                       ecsync (or the aws CLI) by hand in another terminal
#   CARGO_TARGET_DIR    where cargo builds (default: $HOME/.cache/ecsync-target, shared with scripts/test.sh)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${ECSYNC_DEMO_PORT:-5555}"
ENDPOINT="http://127.0.0.1:${PORT}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/ecsync/venv"

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'demo.sh: %s\n' "$*" >&2
  exit 1
}

# moto_server and a python3 that can import boto3 (seed_demo.py needs it; moto depends on it).
ensure_moto() {
  if [[ -x "$VENV/bin/moto_server" ]]; then
    PATH="$VENV/bin:$PATH"
  fi
  if command -v moto_server >/dev/null 2>&1 && python3 -c 'import boto3' 2>/dev/null; then
    return
  fi
  command -v python3 >/dev/null 2>&1 ||
    die "python3 is needed for moto (Debian/Ubuntu: apt-get install python3 python3-venv)"
  say "installing moto: pip install 'moto[server]'"
  if ! python3 -m pip install --quiet 'moto[server]'; then
    # No pip, or a system python that refuses pip installs (PEP 668): use a private virtualenv.
    say "falling back to a virtualenv in $VENV"
    python3 -m venv "$VENV" ||
      die "cannot create a virtualenv (Debian/Ubuntu: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet 'moto[server]'
    PATH="$VENV/bin:$PATH"
  fi
  hash -r
  command -v moto_server >/dev/null 2>&1 ||
    die "moto is installed but moto_server is not on PATH ($(python3 -m site --user-base)/bin?)"
}

answers() {
  python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer will do
except Exception:
    sys.exit(1)
EOF
}

MOTO_PID=""
MOTO_LOG=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    say "stopping moto_server (pid $MOTO_PID; its log: $MOTO_LOG)"
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}

start_moto() {
  if answers "$ENDPOINT"; then
    die "something already answers on $ENDPOINT; stop it or set ECSYNC_DEMO_PORT"
  fi
  MOTO_LOG="$(mktemp "${TMPDIR:-/tmp}/ecsync-demo-moto.XXXXXX")"
  say "starting moto_server on $ENDPOINT (log: $MOTO_LOG)"
  # Without MOTO_ECS_SERVICE_RUNNING moto never finishes a deployment, and the
  # demo's services would show Progressing forever.
  MOTO_ECS_SERVICE_RUNNING="${MOTO_ECS_SERVICE_RUNNING:-2}" \
    moto_server -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  trap cleanup EXIT
  for _ in $(seq 1 100); do
    if answers "$ENDPOINT"; then
      return
    fi
    kill -0 "$MOTO_PID" 2>/dev/null || {
      cat "$MOTO_LOG" >&2
      die "moto_server exited"
    }
    sleep 0.2
  done
  cat "$MOTO_LOG" >&2
  die "moto_server did not answer on $ENDPOINT within 20 s"
}

build_ecsync() {
  command -v cargo >/dev/null 2>&1 || die "cargo is needed: install Rust from https://rustup.rs"
  # The same target directory as scripts/test.sh, so one build serves both.
  if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    export CARGO_TARGET_DIR="$HOME/.cache/ecsync-target"
  fi
  mkdir -p "$CARGO_TARGET_DIR"
  say "building ecsync (cargo build${CARGO_TARGET_DIR:+, target dir $CARGO_TARGET_DIR})"
  # --all-targets builds with the same dependency features as the test suite
  # (dev-dependencies switch on SDK test utilities), so the demo and
  # scripts/test.sh share one build of the AWS SDK instead of two.
  (cd "$REPO_ROOT" && cargo build --quiet --all-targets)
  ECSYNC_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/ecsync"
  [[ -x "$ECSYNC_BIN" ]] || die "built, but no binary at $ECSYNC_BIN"
}

aws_env() {
  # Point everything at moto, and make sure nothing can reach a real account.
  unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
  export AWS_ENDPOINT_URL="$ENDPOINT"
  export AWS_REGION=us-east-1
  export AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=testing
  export AWS_SECRET_ACCESS_KEY=testing
  export AWS_EC2_METADATA_DISABLED=true
}

ensure_moto
# Build before starting moto: a first build takes minutes and needs nothing from moto.
build_ecsync
aws_env
start_moto
say "seeding the demo's AWS state"
python3 "$REPO_ROOT/scripts/seed_demo.py" --endpoint "$ENDPOINT" --manifests "$REPO_ROOT/manifests/demo"

cat >&2 <<EOF
==> moto is ready. In another terminal, to look around:
      export AWS_ENDPOINT_URL=$ENDPOINT AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
      $ECSYNC_BIN diff --repo $REPO_ROOT --path manifests/demo
      curl -s 127.0.0.1:9464/status; curl -s 127.0.0.1:9464/metrics
EOF

if [[ "${ECSYNC_DEMO_NO_RUN:-0}" == 1 ]]; then
  say "ECSYNC_DEMO_NO_RUN=1: not starting ecsync; Ctrl-C stops moto"
  trap 'exit 0' INT TERM # a clean exit; the EXIT trap stops moto
  wait "$MOTO_PID"
  exit 0
fi

# Not `exec`: the EXIT trap has to outlive ecsync to stop moto_server. ecsync runs in the
# foreground, so Ctrl-C reaches it (it drains and exits 0); moto, started in the background,
# ignores that SIGINT and is stopped by the trap.
say "running: ecsync run --repo $REPO_ROOT --path manifests/demo --interval 10s --log-format text $*"
status=0
"$ECSYNC_BIN" run --repo "$REPO_ROOT" --path manifests/demo --interval 10s --log-format text "$@" ||
  status=$?
exit "$status"
