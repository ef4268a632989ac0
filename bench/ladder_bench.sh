#!/bin/sh
# ladder_bench.sh: the daemon's ABR ladder, fed over RTMP in real time,
# against the ffmpeg CLI doing the same ladder with the same x264 settings
# (two variants: the daemon's cascade, every rung from the source), with
# CPU-s per media-s and SSIM per rung for each. See bench/ladder_bench.py.
#
#   bench/ladder_bench.sh [BUILD_DIR] [SECONDS]    # defaults: build/, 60
#
# BUILD_DIR/galarelay must be built. bench/ladder_bench.c (the offline
# pipeline on a file, no RTMP, no HLS) stays as a tool of its own.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
secs=${2:-60}
exec python3 "$here/ladder_bench.py" --build "$build" --seconds "$secs"
