#!/usr/bin/env bash
# soak: the show-night load held for a long time, watching the daemon's
# memory ("a soak test runs a publisher, 2,000 chat viewers and a
# comment storm for ten minutes ... and shows flat RSS"). A benchmark, not
# part of ctest.
#
#   bench/soak.sh [BUILD_DIR]                 # default BUILD_DIR: build/
#   DURATION=120 bench/soak.sh build          # a short check
#
# What runs, all on loopback against one daemon (free ports, temp config,
# chat limits raised as in bench/chat_bench.sh, a one-rung ladder: the
# 640x360 source passed through + 240p ultrafast):
#   - ffmpeg publishing a 640x360 30 fps test pattern + tone in real time
#   - bench/chat_load: VIEWERS chat viewers (2000) and POSTERS posters (20)
#     sending RATE comments/s in total (100) for DURATION seconds (600)
#   - FOLLOWERS HLS viewers (10), spread over the renditions, each following
#     its media playlist with blocking reloads (_HLS_msn/_HLS_part) and
#     fetching every new part, as an LL-HLS player does (python3, stdlib)
# Every SAMPLE seconds (10) the daemon's VmRSS, VmHWM, thread count and CPU
# (utime+stime from /proc/PID/stat, % of one core over the interval) go to
# a CSV ($OUT, default soak.csv in the temp folder, kept when OUT is given).
# At the end: the samples, the RSS slope over the second half of the run
# (least squares, KiB/min), and the verdict: flat when the slope would move
# RSS by less than FLAT_PCT (1) % of its second-half mean in 10 minutes.
#
# Environment: DURATION, VIEWERS, POSTERS, RATE, FOLLOWERS, SAMPLE, FLAT_PCT,
# OUT (CSV path), KEEP=1 (keep the temp folder), CHAT_LOAD / GALARELAY_BIN
# (use these binaries instead of building).
#
# Exit: 0 when the run completed (the verdict is reported, not enforced),
# 1 when it could not run or the daemon died.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$src/build}

DURATION=${DURATION:-600}
VIEWERS=${VIEWERS:-2000}
POSTERS=${POSTERS:-20}
RATE=${RATE:-100}
FOLLOWERS=${FOLLOWERS:-10}
SAMPLE=${SAMPLE:-10}
FLAT_PCT=${FLAT_PCT:-1}

say() { echo "soak: $*" >&2; }

for need in ffmpeg curl python3; do
  command -v "$need" >/dev/null || { say "$need is not installed"; exit 1; }
done

source "$src/bench/lib.sh"
bench_binaries

bench_fd_limit $((VIEWERS + POSTERS + 256))

bench_tmp soak
csv=${OUT:-$tmp/soak.csv}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http=$(free_port)
rtmp=$(free_port)
key=soak-key-$RANDOM$RANDOM

cat >"$tmp/galarelay.conf" <<EOF
[server]
http_listen = 127.0.0.1:$http
rtmp_listen = 127.0.0.1:$rtmp
state_dir = $tmp/state
max_http_connections = $((VIEWERS + POSTERS + FOLLOWERS + 1000))

[channel gala]
key = $key
title = soak

[rung 240p]
height = 240
video_bitrate = 300
preset = ultrafast

[chat]
moderator_tokens = soak-moderator-$RANDOM$RANDOM
user_rate = 1000
user_burst = 1000
addr_rate = 100000
addr_burst = 100000
max_connections_per_addr = 1000000
hello_addr_rate = 100000
hello_addr_burst = 100000
viewer_events_per_sec = 0
EOF

"$GALARELAY_BIN" -c "$tmp/galarelay.conf" 2>"$tmp/galarelay.log" &
gpid=$!
pids+=("$gpid")
for i in $(seq 150); do
  if curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$gpid" 2>/dev/null || (( i == 150 )); then
    say "galarelay did not come up:"; tail -20 "$tmp/galarelay.log" >&2; exit 1
  fi
  sleep 0.1
done

ffmpeg -hide_banner -loglevel error -nostdin -re \
  -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -c:v libx264 -preset ultrafast -tune zerolatency -g 30 -pix_fmt yuv420p -c:a aac -b:a 64k \
  -f flv "rtmp://127.0.0.1:$rtmp/live/$key" 2>"$tmp/ffmpeg.log" &
fpid=$!
pids+=("$fpid")

# On air: the channel serves the feed (not the slate) with a few segments.
for i in $(seq 300); do
  if curl -fsS "http://127.0.0.1:$http/api/v1/channels" 2>/dev/null |
      python3 -c 'import json,sys; c=[c for c in json.load(sys.stdin)["channels"] if c["name"]=="gala"][0]; sys.exit(0 if c.get("live") and not c.get("slate") else 1)' 2>/dev/null &&
     [[ $(curl -fsS "http://127.0.0.1:$http/hls/gala/source/index.m3u8" 2>/dev/null | grep -c '^#EXTINF' || true) -ge 2 ]]; then
    break
  fi
  if ! kill -0 "$fpid" 2>/dev/null || (( i == 300 )); then
    say "the feed did not come on air:"; tail -5 "$tmp/ffmpeg.log" "$tmp/galarelay.log" >&2; exit 1
  fi
  sleep 0.1
done
say "on air; $VIEWERS chat viewers, $POSTERS posters at $RATE comments/s, $FOLLOWERS HLS followers, $DURATION s"

# HLS followers: blocking reloads, every new part fetched.
cat >"$tmp/followers.py" <<'PY'
import os, signal, sys, threading, time, urllib.error, urllib.parse, urllib.request
sys.path.insert(0, sys.argv[1])
from hls_check import MediaPlaylist, parse_master
master_url, n, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
stats = {"reloads": 0, "parts": 0, "bytes": 0, "errors": 0}
lock = threading.Lock()
def get(url):
    with urllib.request.urlopen(url, timeout=15) as r:
        return r.read()
def follow(i, url, deadline):
    seen = set()
    pl = None
    while time.monotonic() < deadline:
        try:
            nxt = pl.next_part() if pl else None
            q = f"?_HLS_msn={nxt[0]}&_HLS_part={nxt[1]}" if nxt else ""
            pl = MediaPlaylist(get(url + q).decode(), url)
            got = 0
            listed = set()
            for s in pl.segments:
                for d, uri, ind in s.parts:
                    listed.add(uri)
                    if uri not in seen and nxt:  # the first load only marks what is there
                        got += len(get(urllib.parse.urljoin(url, uri)))
                        with lock:
                            stats["parts"] += 1
            seen = listed
            with lock:
                stats["reloads"] += 1
                stats["bytes"] += got
        except Exception:
            with lock:
                stats["errors"] += 1
            pl = None
            time.sleep(0.5)
def report(*_):
    with lock:
        print(f"{n} followers over {', '.join(uris)}: {stats['reloads']} playlist reloads, {stats['parts']} parts, "
              f"{stats['bytes'] / 1e6:.1f} MB, {stats['errors']} errors", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, report)
variants, media = parse_master(get(master_url).decode())
uris = [u for _, u in variants] + [m["URI"] for m in media if "URI" in m]
deadline = time.monotonic() + seconds
ts = [threading.Thread(target=follow, args=(i, urllib.parse.urljoin(master_url, uris[i % len(uris)]), deadline), daemon=True)
      for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
report()
PY
total=$((DURATION + 15))
python3 "$tmp/followers.py" "$src/tests/integration" "http://127.0.0.1:$http/hls/gala/master.m3u8" \
  "$FOLLOWERS" "$total" >"$tmp/followers.out" 2>&1 &
hpid=$!
pids+=("$hpid")

"$CHAT_LOAD" --url "ws://127.0.0.1:$http/chat/gala" --viewers "$VIEWERS" --posters "$POSTERS" \
  --rate "$RATE" --duration "$DURATION" --settle 3 --drain 2 --drain-max 30 \
  --pid "$gpid" --label galarelay --json "$tmp/chat.json" >/dev/null 2>"$tmp/chat_load.log" &
lpid=$!
pids+=("$lpid")

# Sampler: every SAMPLE s until chat_load is done.
hz=$(getconf CLK_TCK)
echo "t_s,rss_kib,hwm_kib,threads,cpu_pct" >"$csv"
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$gpid/stat"; }
t0=$(date +%s.%N)
prev_t=$t0
prev_c=$(ticks)
sample() {
  local now c rss hwm thr
  now=$(date +%s.%N)
  c=$(ticks)
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$gpid/status")
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$gpid/status")
  thr=$(awk '/^Threads:/ { print $2 }' "/proc/$gpid/status")
  awk -v t="$now" -v t0="$t0" -v pt="$prev_t" -v c="$c" -v pc="$prev_c" -v hz="$hz" \
      -v rss="$rss" -v hwm="$hwm" -v thr="$thr" \
      'BEGIN { dt = t - pt; printf "%.1f,%d,%d,%d,%.1f\n", t - t0, rss, hwm, thr, (dt > 0 ? (c - pc) / hz / dt * 100 : 0) }' >>"$csv"
  prev_t=$now
  prev_c=$c
}
sample
died=0
while kill -0 "$lpid" 2>/dev/null; do
  for _ in $(seq $((SAMPLE * 10))); do
    kill -0 "$lpid" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$gpid" 2>/dev/null; then died=1; break; fi
  sample
done
lrc=0
wait "$lpid" || lrc=$?
if ! kill -0 "$gpid" 2>/dev/null; then died=1; fi
pub_alive=running
kill -0 "$fpid" 2>/dev/null || pub_alive=EXITED
kill "$hpid" 2>/dev/null || true
wait "$hpid" 2>/dev/null || true

echo "soak: DURATION=$DURATION s, $VIEWERS chat viewers + $POSTERS posters at $RATE comments/s, $FOLLOWERS HLS followers,"
echo "      publisher 640x360 30 fps x264 ultrafast (source + 240p rung); samples every $SAMPLE s"
echo ""
column -s, -t <"$csv" 2>/dev/null || cat "$csv"
echo ""
python3 - "$csv" "$FLAT_PCT" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
flat_pct = float(sys.argv[2])
t = [float(r["t_s"]) for r in rows]
rss = [float(r["rss_kib"]) for r in rows]
cpu = [float(r["cpu_pct"]) for r in rows[1:]]
half = t[-1] / 2
pts = [(x, y) for x, y in zip(t, rss) if x >= half]
if len(pts) < 3:
    print(f"too few samples in the second half ({len(pts)}) for a slope")
    sys.exit(0)
n = len(pts)
mx = sum(x for x, _ in pts) / n
my = sum(y for _, y in pts) / n
sxx = sum((x - mx) ** 2 for x, _ in pts)
slope = sum((x - mx) * (y - my) for x, y in pts) / sxx * 60  # KiB/min
per10 = slope * 10
limit = my * flat_pct / 100
print(f"RSS: start {rss[0] / 1024:.1f} MiB, peak {max(rss) / 1024:.1f} MiB, end {rss[-1] / 1024:.1f} MiB; "
      f"second half ({pts[0][0]:.0f}-{pts[-1][0]:.0f} s, {n} samples) mean {my / 1024:.1f} MiB")
print(f"RSS slope over the second half: {slope:+.1f} KiB/min = {per10:+.0f} KiB per 10 min "
      f"({100 * per10 / my:+.2f} % of the mean)")
if cpu:
    print(f"daemon CPU: mean {sum(cpu) / len(cpu):.0f} %, max {max(cpu):.0f} % of one core")
print(f"verdict: {'FLAT' if abs(per10) < limit else 'NOT FLAT'} "
      f"(|slope| x 10 min {'<' if abs(per10) < limit else '>='} {flat_pct:g} % of mean = {limit:.0f} KiB)")
PY
echo ""
if [[ -f $tmp/chat.json ]]; then
  python3 - "$tmp/chat.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"chat: {r['viewers']}/{r['viewers_wanted']} viewers, {r['sent']} comments sent, {r['acks']} acked, "
      f"{r['error_replies']} errors ({r['rate_limited']} rate_limited), "
      f"{100 * r['delivered_ratio']:.1f} % of expected events delivered, "
      f"latency p50 {r['lat_p50_ms']:.1f} ms p99 {r['lat_p99_ms']:.1f} ms max {r['lat_max_ms']:.1f} ms, "
      f"closed by server {r['closed_by_server']}")
PY
else
  echo "chat: chat_load wrote no report (exit $lrc)"; tail -5 "$tmp/chat_load.log"
fi
echo "hls: $(cat "$tmp/followers.out")"
echo "publisher: $pub_alive; daemon: $([[ $died == 1 ]] && echo DIED || echo running)"
if [[ -n ${OUT:-} ]]; then say "samples in $csv"; fi

if (( died )); then
  say "galarelay died during the soak:"; tail -20 "$tmp/galarelay.log" >&2
  exit 1
fi
if (( lrc != 0 )); then say "chat_load exited $lrc"; exit 1; fi
exit 0
