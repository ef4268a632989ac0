#!/bin/sh
# run.sh: the browser tests (headless Chromium from Debian, driven by
# playwright-core from tests/package.json).
#
#   1. mock_pages.mjs: the pages against a stand-in server inside the
#      browser (message shapes, refusals in words, HTML shown as text).
#   2. live_pages.mjs: the pages against the real daemon, started here on
#      free loopback ports with a temporary config; the test itself starts
#      and stops the ffmpeg publisher. The daemon is then stopped with
#      SIGTERM and must exit 0: a sanitizer report at shutdown, or a crash
#      during the test, fails the run.
#
# Screenshots go to $BROWSER_OUT (default: $GALARELAY_BUILD_DIR/browser-out).
# Environment (set by ctest): GALARELAY_BIN, GALARELAY_SOURCE_DIR,
# GALARELAY_BUILD_DIR.
set -eu

SRC=${GALARELAY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${GALARELAY_BUILD_DIR:-$SRC/build}
BIN=${GALARELAY_BIN:-$BUILD/galarelay}
WEB_ROOT=$BUILD/web-root
BROWSER_OUT=${BROWSER_OUT:-$BUILD/browser-out}
export BROWSER_OUT
mkdir -p "$BROWSER_OUT"

for need in node ffmpeg curl python3 /usr/bin/chromium; do
  command -v "$need" >/dev/null 2>&1 || { echo "run.sh: $need is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
done
[ -f "$WEB_ROOT/vendor/hls.min.js" ] || { echo "run.sh: $WEB_ROOT is not built (cmake --build)" >&2; exit 1; }
if [ ! -d "$SRC/tests/node_modules/playwright-core" ]; then
  (cd "$SRC/tests" && npm ci --no-audit --no-fund --loglevel=error)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/galarelay-browser.XXXXXX")
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
HTTP_PORT=$(free_port)
RTMP_PORT=$(free_port)
KEY=browser-test-key
MOD_TOKEN=browser-test-moderator

# Source 640x360 passed through plus one small rung: two renditions to
# switch between, cheap enough for a 2-core machine.
cat >"$tmp/galarelay.conf" <<CONF
[server]
http_listen = 127.0.0.1:$HTTP_PORT
rtmp_listen = 127.0.0.1:$RTMP_PORT
state_dir = $tmp/state
web_root = $WEB_ROOT

[channel gala]
key = $KEY
title = 留浙云春晚

[rung 180p]
height = 180
video_bitrate = 300
preset = ultrafast

[chat]
moderator_tokens = $MOD_TOKEN
user_rate = 10
user_burst = 20
max_comment_length = 200
CONF

echo "# step 1: pages against a stand-in server"
rc=0
node "$SRC/tests/browser/mock_pages.mjs" "$WEB_ROOT" || rc=1

echo "# step 2: pages against the real daemon"
"$BIN" -c "$tmp/galarelay.conf" >"$BROWSER_OUT/daemon.log" 2>&1 &
daemon_pid=$!
i=0
until curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "run.sh: the daemon did not come up; its log:" >&2
    tail -n 40 "$BROWSER_OUT/daemon.log" >&2
    exit 1
  fi
  sleep 0.1
done

GALARELAY_URL="http://127.0.0.1:$HTTP_PORT" \
RTMP_PUBLISH_URL="rtmp://127.0.0.1:$RTMP_PORT/live/$KEY" \
CHANNEL=gala MOD_TOKEN=$MOD_TOKEN \
  node "$SRC/tests/browser/live_pages.mjs" || { rc=1; echo "# daemon log: $BROWSER_OUT/daemon.log"; }

echo "# step 3: the daemon stops cleanly"
kill -TERM "$daemon_pid" 2>/dev/null || true
# a stop that hangs is killed after 10 s (and fails: 137)
( sleep 10; kill -KILL "$daemon_pid" ) >/dev/null 2>&1 &
watchdog=$!
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
kill "$watchdog" 2>/dev/null || true
daemon_pid=
if [ "$daemon_rc" -ne 0 ]; then
  rc=1
  echo "run.sh: the daemon exited with $daemon_rc after SIGTERM (want 0); the end of its log:" >&2
  tail -n 60 "$BROWSER_OUT/daemon.log" >&2
fi

echo "# screenshots in $BROWSER_OUT"
exit $rc
