#!/usr/bin/env bash
# The README's picture of the dashboard: brings up the demo (scripts/demo.sh: moto seeded with
# the demo's AWS state, `ecsync run` on manifests/demo), waits until the web service's migration
# has reached ${ECSYNC_SHOT_PERCENT:-50}% on ECS, and has headless Chromium save `GET /`.
#
#   scripts/screenshot.sh [OUT.png]        (default: docs/dashboard.png)
#
# Settings (environment):
#   ECSYNC_SHOT_PERCENT  take it once the migration carries this much on ECS (default 50)
#   ECSYNC_SHOT_SIZE     the browser window, WIDTH,HEIGHT (default 1280,1400)
#   ECSYNC_SHOT_LISTEN   ecsync's --listen (default 127.0.0.1:9474, so a running demo is left alone)
#   ECSYNC_DEMO_PORT     moto's port (default 5556 here, for the same reason)
#   ECSYNC_SHOT_TIMEOUT  seconds to wait, the demo's first build included (default 1800)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO_ROOT/docs/dashboard.png}"
PERCENT="${ECSYNC_SHOT_PERCENT:-50}"
SIZE="${ECSYNC_SHOT_SIZE:-1280,1400}"
LISTEN="${ECSYNC_SHOT_LISTEN:-127.0.0.1:9474}"
TIMEOUT="${ECSYNC_SHOT_TIMEOUT:-1800}"
export ECSYNC_DEMO_PORT="${ECSYNC_DEMO_PORT:-5556}"

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'screenshot.sh: %s\n' "$*" >&2
  exit 1
}

command -v chromium >/dev/null 2>&1 ||
  die "headless Chromium is needed: apt-get install -y --no-install-recommends chromium"
command -v python3 >/dev/null 2>&1 || die "python3 is needed (the demo needs it for moto too)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ecsync-shot.XXXXXX")"
DEMO_LOG="$WORK/demo.log"
DEMO_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [[ -n "$DEMO_PID" ]] && kill -0 "$DEMO_PID" 2>/dev/null; then
    say "stopping the demo (its log: $DEMO_LOG)"
    # The demo runs in its own process group: ecsync drains on TERM, moto stops, demo.sh exits.
    kill -TERM -- "-$DEMO_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$DEMO_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$DEMO_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

say "starting the demo (moto on port $ECSYNC_DEMO_PORT, ecsync on $LISTEN; log: $DEMO_LOG)"
setsid "$REPO_ROOT/scripts/demo.sh" --listen "$LISTEN" >"$DEMO_LOG" 2>&1 &
DEMO_PID=$!

say "waiting for the web service's migration to reach ${PERCENT}% (the first build takes minutes)"
python3 - "$LISTEN" "$PERCENT" "$TIMEOUT" "$DEMO_PID" <<'EOF' || {
import json, os, sys, time, urllib.request

listen, percent, timeout, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the demo exited")
    try:
        with urllib.request.urlopen(f"http://{listen}/status", timeout=2) as resp:
            status = json.load(resp)
        web = next((s for s in status["services"] if s["service"] == "web"), None)
        if web and (web.get("migration") or {}).get("percent", 0) >= percent:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(1)
sys.exit("timed out")
EOF
  tail -n 40 "$DEMO_LOG" >&2
  die "the demo did not get there"
}

mkdir -p "$(dirname "$OUT")"
say "screenshot of http://$LISTEN/ ($SIZE) into $OUT"
# Its own profile, nothing in the background: the page itself needs nothing but ecsync.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$WORK/profile" \
  --window-size="$SIZE" --screenshot="$OUT" "http://$LISTEN/" \
  >"$WORK/chromium.log" 2>&1 || {
  cat "$WORK/chromium.log" >&2
  die "chromium failed"
}
[[ -s "$OUT" ]] || die "chromium wrote no screenshot"
say "wrote $OUT ($(wc -c <"$OUT") bytes)"
