#!/usr/bin/env bash
# Installs what is missing, builds, and starts galarelay on its built-in
# defaults with a demo broadcaster: ffmpeg publishing a test pattern with a
# burned-in clock and a tone to the demo key. Prints the URLs to open.
# Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/bootstrap.sh
export CC=${CC:-clang}
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
cmake --build build -j"$(nproc)" --target galarelay galarelay_web >build/run-build.log 2>&1 || {
  tail -n 60 build/run-build.log >&2
  echo "run: the build failed (full log: build/run-build.log)" >&2
  exit 1
}

# The built-in defaults: HTTP on 127.0.0.1:8080, RTMP on 127.0.0.1:1935. A
# port someone already listens on (an earlier run still going, another
# server) would make the daemon fail, or answer in its place.
http_port=8080 rtmp_port=1935
for port in $http_port $rtmp_port; do
  holder=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
  if [ -n "$holder" ] || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run: port $port is already in use; stop what listens there first:" >&2
    echo "${holder:-  (something answers on 127.0.0.1:$port)}" >&2
    exit 1
  fi
done

relay_pid='' ffmpeg_pid=''
cleanup() {
  [ -n "$ffmpeg_pid" ] && kill "$ffmpeg_pid" 2>/dev/null || true
  [ -n "$relay_pid" ] && kill -TERM "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./build/galarelay &
relay_pid=$!
healthy=
for _ in $(seq 300); do # 30 s
  kill -0 "$relay_pid" 2>/dev/null || break
  if curl -fsS "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1; then healthy=1; break; fi
  sleep 0.1
done
if ! kill -0 "$relay_pid" 2>/dev/null; then
  relay_pid=
  echo "run: galarelay exited before it was ready (its log is above)" >&2
  exit 1
fi
if [ -z "$healthy" ]; then
  echo "run: galarelay (pid $relay_pid) is running but http://127.0.0.1:$http_port/healthz did not answer within 30 s" >&2
  exit 1
fi

font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
clock="drawtext=fontfile=$font:text='%{localtime\\:%H\\\\\\:%M\\\\\\:%S}':fontsize=72:fontcolor=white:box=1:boxcolor=black@0.6:x=(w-tw)/2:y=h-th-40"
ffmpeg -nostdin -hide_banner -loglevel error -re \
  -f lavfi -i "testsrc2=size=1280x720:rate=30,$clock" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 3M -pix_fmt yuv420p \
  -c:a aac -b:a 128k -f flv rtmp://127.0.0.1:1935/live/demo-key &
ffmpeg_pid=$!

cat <<MSG

galarelay is running on its defaults, with a demo broadcaster.

  Watch:      http://127.0.0.1:8080/watch/gala
  Moderate:   http://127.0.0.1:8080/moderate/gala   (token: demo-moderator)
  Channels:   http://127.0.0.1:8080/
  HLS:        http://127.0.0.1:8080/hls/gala/master.m3u8
  RTMP play:  rtmp://127.0.0.1:1935/live/gala
  Metrics:    http://127.0.0.1:8080/metrics
  Health:     http://127.0.0.1:8080/healthz

Publish your own: rtmp://127.0.0.1:1935/live  with stream key demo-key
Ctrl-C stops.
MSG
wait "$relay_pid"
