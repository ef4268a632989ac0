#!/usr/bin/env bash
# chat_bench: live comments under load, galarelay side by side with its peers
# in the same run on the same machine, all driven the same way from a
# separate process (bench/chat_load.c) on loopback:
#   galarelay      the daemon, viewer_events_per_sec = 0 and the rate limits
#                  raised so that every comment goes to every viewer;
#   node-batched   Node.js `ws` batching as galarelay does: one batch per
#                  50 ms tick encoded once, one frame per member
#                  (bench/chat_node_batched.mjs); the ratios are against it;
#   go             Go on gorilla/websocket, a hub goroutine, a reader and a
#                  writer goroutine per client, the same 50 ms batches
#                  (bench/chat_go_server/main.go, built here with Debian's
#                  golang-go and golang-github-gorilla-websocket-dev, offline);
#   node           Node.js `ws` unbatched: one frame per comment per member
#                  (bench/chat_node_server.mjs);
#   galarelay-deflate  with COMPRESS=1: galarelay again, every viewer asking
#                  for compressed batches (hello "compress":"deflate-raw");
#                  the peers do not compress (none of them offers it), so the
#                  ratio reported is galarelay's own, with against without.
#
#   bench/chat_bench.sh [BUILD_DIR]          # default BUILD_DIR: build/
#   VIEWERS=10000 RATE=200 bench/chat_bench.sh build
#   SIZES="1000 5000 10000" POSTERS=10 bench/chat_bench.sh build   # the summary table
#
# Environment: SIZES (a list of viewer counts: the whole bench once per
# size, then one summary table over all: per size and server delivered %,
# acked/posted, p50/p99 delivery and p99 ack latency, events per server
# CPU-second, KiB per idle viewer, and for galarelay the fan-out's sends per
# member per tick and bytes copied in userspace per delivered event, read
# from its /metrics), VIEWERS (1000), POSTERS (20), RATE (comments/s in total, 200),
# DURATION (s, 20), SERVERS ("galarelay node-batched go node": which to run,
# in this order), SETTLE (s
# idle before the storm, 3), DRAIN (s, 2: at least this long after the last
# comment, and on while a server still delivers its backlog, up to
# DRAIN_MAX, 30);
# SERVER_CPUS / CLIENT_CPUS: optional taskset CPU lists; KEEP=1 keeps the
# temp folder (configs, logs, JSON); BASE_SETTLE (s, 2: idle after a
# server's start before its base RSS is read); SMOKE=1: a tiny run for
# ctest (50 viewers, 2 posters, 20/s, 3 s, SERVERS "galarelay node" as
# before: each server adds ~8 s, the new peers would take it past 20 s; set
# SERVERS to smoke-test them) that fails when a run fails, when a server
# delivered less than every comment to every viewer (at that load nothing
# may be lost), or when a tool is missing; with ACK_P99_MAX_MS also when a
# comment was not acked or the acks' p99 latency is above it, with
# RSS_PER_VIEWER_MAX_KB when the server's RSS per idle viewer is above it;
# CHAT_LOAD / GALARELAY_BIN: use these binaries instead of building;
# COMPRESS=1: add the galarelay-deflate run (after galarelay); TEXT=cjk:
# the comments are realistic Chinese ones (bench/cjk_comments.txt, one in
# eight carrying the latency marker) instead of ASCII with a marker each;
# TICK_MS: galarelay's [chat] tick_ms (50; the peers' tick stays 50 ms).
#
# Per server it reports what chat_load measured: delivered events (and the
# ratio to sent x viewers), latency send → receipt at the viewers
# (p50/p99/max), the server's CPU seconds (utime+stime of the server's own
# PID from /proc/PID/stat, the same window for every server: the storm and
# the drain), CPU microseconds per delivered event and events per
# CPU-second, and VmRSS before any connection, with every viewer idle, and
# at the storm's peak (KiB per idle viewer). Then each server's ratios
# against node-batched, and the goals.
#
# Exit: 0 when every run completed (goals are reported, not enforced), 1
# when a run failed, 77 when node, bench/node_modules or (with go in
# SERVERS) go or gorilla/websocket is missing (with the reason on stderr;
# 1 with SMOKE=1: a test never skips).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}

if [[ ${SMOKE:-0} == 1 ]]; then
  VIEWERS=${VIEWERS:-50} POSTERS=${POSTERS:-2} RATE=${RATE:-20} DURATION=${DURATION:-3}
  SETTLE=${SETTLE:-1} DRAIN=${DRAIN:-1}
  SERVERS=${SERVERS:-galarelay node}
fi
BASE_SETTLE=${BASE_SETTLE:-2}
VIEWERS=${VIEWERS:-1000}
POSTERS=${POSTERS:-20}
RATE=${RATE:-200}
DURATION=${DURATION:-20}
SETTLE=${SETTLE:-3}
DRAIN=${DRAIN:-2}
DRAIN_MAX=${DRAIN_MAX:-30}
SERVERS=${SERVERS:-galarelay node-batched go node}
TEXT=${TEXT:-ascii}
TICK_MS=${TICK_MS:-50}
if [[ ${COMPRESS:-0} == 1 && " $SERVERS " != *" galarelay-deflate "* ]]; then
  SERVERS=${SERVERS/galarelay/galarelay galarelay-deflate}
  [[ " $SERVERS " == *" galarelay-deflate "* ]] || SERVERS="galarelay-deflate $SERVERS"
fi

say() { echo "chat_bench: $*" >&2; }
missing_rc=77
if [[ ${SMOKE:-0} == 1 ]]; then missing_rc=1; fi

command -v node >/dev/null || { say "node is not installed (scripts/bootstrap.sh installs it)"; exit $missing_rc; }
if [[ ! -f $src/bench/node_modules/ws/package.json ]]; then
  say "installing bench/node_modules (npm ci)"
  (cd "$src/bench" && npm ci --prefer-offline --no-audit --no-fund >&2) || { say "npm ci failed"; exit $missing_rc; }
fi

gorilla=/usr/share/gocode/src/github.com/gorilla/websocket
if [[ " $SERVERS " == *" go "* ]]; then
  command -v go >/dev/null || { say "go is not installed (golang-go; scripts/bootstrap.sh)"; exit $missing_rc; }
  [[ -d $gorilla ]] || { say "$gorilla is missing (golang-github-gorilla-websocket-dev)"; exit $missing_rc; }
fi

source "$src/bench/lib.sh"
bench_binaries

# SIZES: this script once per size (its own table each), then the summary.
if [[ -n ${SIZES:-} && -z ${CHAT_BENCH_REPORTS:-} ]]; then
  reports_dir=$(mktemp -d "${TMPDIR:-/tmp}/galarelay-chatbench-sizes-XXXXXX")
  rc=0
  for n in $SIZES; do
    say "=== $n viewers"
    mkdir -p "$reports_dir/$n"
    CHAT_BENCH_REPORTS=$reports_dir/$n VIEWERS=$n CHAT_LOAD=$CHAT_LOAD GALARELAY_BIN=$GALARELAY_BIN \
      bash "${BASH_SOURCE[0]}" "$build" || rc=1
  done
  echo
  node "$src/bench/chat_table.mjs" --summary "$reports_dir"/*/*.json || rc=1
  rm -rf "$reports_dir"
  exit $rc
fi

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

run_load() { # run_load LABEL PORT PID [COMPRESS]
  local label=$1 port=$2 pid=$3 compress=${4:-0} rc=0
  say "$label: $VIEWERS viewers, $POSTERS posters, $RATE comments/s ($TEXT text) for $DURATION s"
  pin "${CLIENT_CPUS:-}" "$CHAT_LOAD" --url "ws://127.0.0.1:$port/chat/gala" --viewers "$VIEWERS" \
    --posters "$POSTERS" --rate "$RATE" --duration "$DURATION" --settle "$SETTLE" --drain "$DRAIN" \
    --drain-max "$DRAIN_MAX" --base-settle "$BASE_SETTLE" \
    --compress "$compress" --text "$TEXT" --cjk-file "$src/bench/cjk_comments.txt" \
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

# ---- galarelay, with limits raised so that the load is accepted:
# run_galarelay LABEL COMPRESS
run_galarelay() {
local label=$1 compress=$2
local http rtmp gpid
http=$(free_port)
rtmp=$(free_port)
cat >"$tmp/$label.conf" <<EOF
[server]
http_listen = 127.0.0.1:$http
rtmp_listen = 127.0.0.1:$rtmp
state_dir = $tmp/state-$label
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
tick_ms = $TICK_MS
EOF
serve "${SERVER_CPUS:-}" "$GALARELAY_BIN" -c "$tmp/$label.conf" 2>"$tmp/$label.log" &
gpid=$!
pids+=("$gpid")
for i in $(seq 150); do
  if curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$gpid" 2>/dev/null || (( i == 150 )); then
    say "galarelay did not come up:"; tail -20 "$tmp/$label.log" >&2; exit 1
  fi
  sleep 0.1
done
run_load "$label" "$http" "$gpid" "$compress" || failed=1
# the fan-out's own counters, beside what chat_load measured
if curl -fsS "http://127.0.0.1:$http/metrics" >"$tmp/$label.metrics" 2>/dev/null && [[ -f $tmp/$label.json ]]; then
  node "$src/bench/chat_table.mjs" --merge-metrics "$tmp/$label.json" "$tmp/$label.metrics" || failed=1
fi
if ! kill -0 "$gpid" 2>/dev/null; then
  say "galarelay died during the run:"; tail -20 "$tmp/$label.log" >&2; failed=1
fi
stop_pid "$gpid"
}

# ---- the peers, same load, one after the other: start_peer LABEL CMD...
# runs CMD (which prints "listening PORT" when ready) on a free port given
# as its first argument, then the load, then stops it.
start_peer() {
  local label=$1; shift
  local port pid
  port=$(free_port)
  serve "${SERVER_CPUS:-}" "$@" "$port" >"$tmp/$label.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for i in $(seq 100); do
    if grep -q '^listening' "$tmp/$label.log" 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null || (( i == 100 )); then
      say "$label server did not come up:"; cat "$tmp/$label.log" >&2; failed=1; return 0
    fi
    sleep 0.1
  done
  run_load "$label" "$port" "$pid" || failed=1
  if ! kill -0 "$pid" 2>/dev/null; then
    say "$label died during the run:"; tail -20 "$tmp/$label.log" >&2; failed=1
  fi
  stop_pid "$pid"
}

for peer in $SERVERS; do
  case $peer in
  galarelay) run_galarelay galarelay 0 ;;
  galarelay-deflate) run_galarelay galarelay-deflate 1 ;;
  node-batched) start_peer node-batched node "$src/bench/chat_node_batched.mjs" ;;
  node) start_peer node node "$src/bench/chat_node_server.mjs" ;;
  go)
    # Debian packages Go libraries as GOPATH sources: no module download
    say "building bench/chat_go_server (GOPATH=/usr/share/gocode, offline)"
    if ! GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$tmp/gocache" GOFLAGS= GOPROXY=off \
      go build -o "$tmp/chat_go_server" "$src/bench/chat_go_server/main.go" >&2; then
      say "go build failed"; failed=1; continue
    fi
    start_peer go "$tmp/chat_go_server"
    ;;
  *) say "unknown server in SERVERS: $peer"; failed=1 ;;
  esac
done

# ---- side by side: every row, ratios against node-batched
reports=()
for peer in $SERVERS; do
  if [[ -f $tmp/$peer.json ]]; then
    reports+=("$tmp/$peer.json")
  else
    say "$peer: no report"; failed=1
  fi
done
if (( ${#reports[@]} > 0 )); then
  node "$src/bench/chat_table.mjs" "${reports[@]}"
  if [[ -n ${CHAT_BENCH_REPORTS:-} ]]; then cp "${reports[@]}" "$CHAT_BENCH_REPORTS/"; fi
fi

# The smoke load is far below what either server handles: every comment
# sent reaches every viewer (sent x viewers events), or the run failed.
if [[ ${SMOKE:-0} == 1 ]]; then
  for label in $SERVERS; do
    node - "$tmp/$label.json" <<'EOF' || { say "$label: not every comment reached every viewer"; failed=1; }
const fs = require('fs');
const f = process.argv[2];
if (!fs.existsSync(f)) { console.error(`${f}: no report`); process.exit(1); }
const r = JSON.parse(fs.readFileSync(f, 'utf8'));
const want = r.sent * r.viewers_wanted;
console.log(`${r.label}: ${r.sent} comments sent, ${r.events} of ${want} deliveries to ${r.viewers} viewers`);
const ackMax = Number(process.env.ACK_P99_MAX_MS || 0);
if (ackMax) console.log(`${r.label}: ${r.acks} of ${r.sent} acked, ack p99 ${r.ack_p99_ms} ms (at most ${ackMax})`);
const acksOk = !ackMax || (r.acks === r.sent && r.ack_p99_ms >= 0 && r.ack_p99_ms <= ackMax);
const rssMax = Number(process.env.RSS_PER_VIEWER_MAX_KB || 0);
if (rssMax) console.log(`${r.label}: ${r.rss_per_idle_viewer_kb} KiB per idle viewer (at most ${rssMax})`);
const rssOk = !rssMax || r.rss_per_idle_viewer_kb <= rssMax;
process.exit(r.sent > 0 && r.viewers === r.viewers_wanted && r.events >= want && acksOk && rssOk ? 0 : 1);
EOF
  done
fi
exit $failed
