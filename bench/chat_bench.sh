#!/usr/bin/env bash
# chat_bench: live comments under load (issue 5), galarelay side by side with
# a minimal Node.js `ws` broadcast server (bench/chat_node_server.mjs) in the
# same run, both driven from a separate process (bench/chat_load.c) on
# loopback.
#
#   bench/chat_bench.sh [BUILD_DIR]          # default BUILD_DIR: build/
#   VIEWERS=10000 RATE=200 bench/chat_bench.sh build
#
# Environment: VIEWERS (1000), POSTERS (20), RATE (comments/s in total, 200),
# DURATION (s, 20), SERVERS ("galarelay node": which to run), SETTLE (s
# idle before the storm, 3), DRAIN (s, 2: at least this long after the last
# comment, and on while a server still delivers its backlog, up to
# DRAIN_MAX, 30);
# SERVER_CPUS / CLIENT_CPUS: optional taskset CPU lists; KEEP=1 keeps the
# temp folder (configs, logs, JSON); SMOKE=1: a tiny run for ctest (50
# viewers, 2 posters, 20/s, 3 s) that fails when a run fails;
# CHAT_LOAD / GALARELAY_BIN: use these binaries instead of building.
#
# Per server it reports what chat_load measured: delivered events/s, latency
# send → receipt at the viewers (p50/p99/max), the server's CPU seconds
# (utime+stime from /proc/PID/stat) over the storm and the drain, events per
# CPU-second, and VmRSS before any connection, with every viewer idle, and
# at the storm's peak. Then the ratios and the issue's goals.
#
# Exit: 0 when both runs completed (goals are reported, not enforced), 1 when
# a run failed, 77 when node or bench/node_modules is missing (ctest: skip).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}

if [[ ${SMOKE:-0} == 1 ]]; then
  VIEWERS=${VIEWERS:-50} POSTERS=${POSTERS:-2} RATE=${RATE:-20} DURATION=${DURATION:-3}
  SETTLE=${SETTLE:-1} DRAIN=${DRAIN:-1}
fi
VIEWERS=${VIEWERS:-1000}
POSTERS=${POSTERS:-20}
RATE=${RATE:-200}
DURATION=${DURATION:-20}
SETTLE=${SETTLE:-3}
DRAIN=${DRAIN:-2}
DRAIN_MAX=${DRAIN_MAX:-30}
SERVERS=${SERVERS:-galarelay node}

say() { echo "chat_bench: $*" >&2; }

command -v node >/dev/null || { say "node is not installed"; exit 77; }
if [[ ! -f $src/bench/node_modules/ws/package.json ]]; then
  say "installing bench/node_modules (npm ci)"
  (cd "$src/bench" && npm ci --prefer-offline --no-audit --no-fund >&2) || { say "npm ci failed"; exit 77; }
fi

source "$src/bench/lib.sh"
bench_binaries

bench_fd_limit $((VIEWERS + POSTERS + 256)) # 10k sockets per side

bench_tmp chatbench

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
pin() { # pin CPULIST cmd...: run under taskset when a list is given
  local cpus=$1; shift
  if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
serve() { # serve CPULIST cmd... &: exec, so that $! is the server's own PID
  local cpus=$1; shift
  if [[ -n $cpus ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}

run_load() { # run_load LABEL PORT PID
  local label=$1 port=$2 pid=$3 rc=0
  say "$label: $VIEWERS viewers, $POSTERS posters, $RATE comments/s for $DURATION s"
  pin "${CLIENT_CPUS:-}" "$CHAT_LOAD" --url "ws://127.0.0.1:$port/chat/gala" --viewers "$VIEWERS" \
    --posters "$POSTERS" --rate "$RATE" --duration "$DURATION" --settle "$SETTLE" --drain "$DRAIN" \
    --drain-max "$DRAIN_MAX" \
    --pid "$pid" --label "$label" --json "$tmp/$label.json" >/dev/null || rc=$?
  if (( rc != 0 )); then say "$label: chat_load exited $rc"; fi
  return $rc
}

stop_pid() { # stop_pid PID: SIGTERM, wait up to 10 s
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

failed=0

# ---- galarelay, with limits raised so that the load is accepted
if [[ " $SERVERS " == *" galarelay "* ]]; then
http=$(free_port)
rtmp=$(free_port)
cat >"$tmp/galarelay.conf" <<EOF
[server]
http_listen = 127.0.0.1:$http
rtmp_listen = 127.0.0.1:$rtmp
state_dir = $tmp/state
max_http_connections = $((VIEWERS + POSTERS + 1000))

[channel gala]
key = bench-key-$RANDOM$RANDOM
title = chat bench

[chat]
moderator_tokens = bench-moderator-$RANDOM$RANDOM
user_rate = 1000
user_burst = 1000
addr_rate = 100000
addr_burst = 100000
max_connections_per_addr = 1000000
hello_addr_rate = 100000
hello_addr_burst = 100000
viewer_events_per_sec = 0
EOF
serve "${SERVER_CPUS:-}" "$GALARELAY_BIN" -c "$tmp/galarelay.conf" 2>"$tmp/galarelay.log" &
gpid=$!
pids+=("$gpid")
for i in $(seq 150); do
  if curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$gpid" 2>/dev/null || (( i == 150 )); then
    say "galarelay did not come up:"; tail -20 "$tmp/galarelay.log" >&2; exit 1
  fi
  sleep 0.1
done
run_load galarelay "$http" "$gpid" || failed=1
if ! kill -0 "$gpid" 2>/dev/null; then
  say "galarelay died during the run:"; tail -20 "$tmp/galarelay.log" >&2; failed=1
fi
stop_pid "$gpid"
fi

# ---- the Node.js ws server, same load
if [[ " $SERVERS " == *" node "* ]]; then
nport=$(free_port)
serve "${SERVER_CPUS:-}" node "$src/bench/chat_node_server.mjs" "$nport" >"$tmp/node.log" 2>&1 &
npid=$!
pids+=("$npid")
for i in $(seq 100); do
  if grep -q '^listening' "$tmp/node.log" 2>/dev/null; then break; fi
  if ! kill -0 "$npid" 2>/dev/null || (( i == 100 )); then
    say "node server did not come up:"; cat "$tmp/node.log" >&2; exit 1
  fi
  sleep 0.1
done
run_load node "$nport" "$npid" || failed=1
stop_pid "$npid"
fi

# ---- side by side
if [[ -f $tmp/galarelay.json && -f $tmp/node.json ]]; then
  node - "$tmp/galarelay.json" "$tmp/node.json" <<'EOF'
const fs = require('fs');
const [a, b] = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
const rows = [
  ['viewers connected', (r) => `${r.viewers}/${r.viewers_wanted}`],
  ['posters, comments/s', (r) => `${r.posters}, ${r.rate}`],
  ['storm + drain s', (r) => `${r.duration_s.toFixed(1)} + ${r.drain_s.toFixed(1)}`],
  ['comments sent / acked', (r) => `${r.sent} / ${r.acks}`],
  ['error replies (rate_limited)', (r) => `${r.error_replies} (${r.rate_limited})`],
  ['events delivered', (r) => `${r.events}`],
  ['  of expected (sent x viewers)', (r) => `${(100 * r.delivered_ratio).toFixed(1)} %`],
  ['events/s delivered', (r) => r.events_per_s.toFixed(0)],
  ['frames received', (r) => `${r.frames}`],
  ['latency p50 ms', (r) => r.lat_p50_ms.toFixed(1)],
  ['latency p90 ms', (r) => r.lat_p90_ms.toFixed(1)],
  ['latency p99 ms', (r) => r.lat_p99_ms.toFixed(1)],
  ['latency max ms', (r) => r.lat_max_ms.toFixed(1)],
  ['server CPU s (storm+drain)', (r) => r.server_cpu_s.toFixed(2)],
  ['server CPU s (connect+idle)', (r) => r.server_cpu_idle_s.toFixed(2)],
  ['events per CPU-second', (r) => r.events_per_cpu_s.toFixed(0)],
  ['RSS before connections MiB', (r) => (r.server_rss_base_kb / 1024).toFixed(1)],
  ['RSS all viewers idle MiB', (r) => (r.server_rss_idle_kb / 1024).toFixed(1)],
  ['RSS storm peak MiB', (r) => (r.server_rss_storm_peak_kb / 1024).toFixed(1)],
  ['RSS per idle viewer KiB', (r) => r.rss_per_idle_viewer_kb.toFixed(2)],
  ['connect time s', (r) => r.connect_s.toFixed(1)],
  ['errors conn/hs/closed/proto', (r) => `${r.connect_errors}/${r.handshake_errors}/${r.closed_by_server}/${r.protocol_errors}`],
  ['load client CPU s (storm)', (r) => r.client_cpu_s.toFixed(2)],
];
const w = 34;
console.log(`${'chat bench'.padEnd(w)}${'galarelay'.padStart(14)}${'node ws'.padStart(14)}`);
for (const [name, f] of rows) console.log(`${name.padEnd(w)}${f(a).padStart(14)}${f(b).padStart(14)}`);
const ratio = b.events_per_cpu_s > 0 ? a.events_per_cpu_s / b.events_per_cpu_s : Infinity;
const rssRatio = a.rss_per_idle_viewer_kb > 0 ? b.rss_per_idle_viewer_kb / a.rss_per_idle_viewer_kb : Infinity;
console.log('');
console.log(`events per CPU-second, galarelay / node: ${ratio.toFixed(2)}x`);
console.log(`RSS per idle viewer, node / galarelay:   ${rssRatio.toFixed(2)}x`);
const goal = (ok, text) => console.log(`goal ${ok ? 'met   ' : 'MISSED'} ${text}`);
console.log('');
goal(a.lat_p99_ms >= 0 && a.lat_p99_ms < 150, `p99 < 150 ms: ${a.lat_p99_ms.toFixed(1)} ms (at ${a.viewers} viewers, ${a.rate}/s; the goal is set at 10000 viewers, 200/s)`);
goal(a.rss_per_idle_viewer_kb < 16, `RSS per idle viewer < 16 KiB: ${a.rss_per_idle_viewer_kb.toFixed(2)} KiB`);
goal(ratio >= 5, `>= 5x node's events per CPU-second: ${ratio.toFixed(2)}x`);
EOF
else
  for f in "$tmp"/*.json; do [[ -f $f ]] && cat "$f"; done
  if [[ " $SERVERS " == *" galarelay "* && " $SERVERS " == *" node "* ]]; then
    say "no side-by-side table: a run produced no report"
    failed=1
  fi
fi
exit $failed
