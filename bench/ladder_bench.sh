#!/bin/sh
# ladder_bench.sh: our transcoder against the ffmpeg CLI on the same ladder.
#
#   bench/ladder_bench.sh BUILD_DIR [SECONDS]
#
# Makes a 1080p30 H.264+AAC FLV with the ffmpeg CLI, then, in the same run:
#  - ladder_bench (our pipeline: decode once, chained scaling, x264 per rung,
#    null packager) with the default ladder (720p/480p/360p + source);
#  - the ffmpeg CLI doing the same ladder in one process (decode once,
#    split, scale, encode; source and audio copied) with the same x264
#    settings as transcoder/pipeline_rung.c, one x264 thread per rung.
# Prints CPU seconds per media second for both and the ratio (goal <= 0.9).
set -eu
build=${1:?usage: ladder_bench.sh BUILD_DIR [SECONDS]}
secs=${2:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/src1080.flv"
ffmpeg -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$secs" \
  -c:v libx264 -preset veryfast -g 60 -b:v 6M -pix_fmt yuv420p -c:a aac -b:a 128k "$src"

bench=$(find "$build" -name ladder_bench -type f -perm -u+x | head -1)
"$bench" "$src" >"$work/ours" 2>"$work/ours.err" || { cat "$work/ours.err"; exit 1; }
grep "packets out" "$work/ours.err" || true
ours=$(grep "^galarelay" "$work/ours")
echo "$ours"

x264='scenecut=0:bframes=0:rc-lookahead=0:sync-lookahead=0:sliced-threads=0:mbtree=0'
rung() { # NAME W H KBPS
  max=$(( $4 * 3 / 2 ))
  echo "-map [$1] -c:v libx264 -preset veryfast -profile:v high -threads 1 -b:v ${4}k" \
       "-maxrate ${max}k -bufsize $(( max * 2 ))k -g 241 -keyint_min 1 -forced-idr 1" \
       "-force_key_frames expr:gte(t,n_forced*2) -x264-params $x264 -f null -"
}
start=$(date +%s.%N)
/usr/bin/time -f 'cli_cpu %U %S' -o "$work/time" \
  ffmpeg -nostdin -loglevel error -y -i "$src" -filter_complex \
  "[0:v]split=3[a][b][c];[a]scale=1280:720[v720];[b]scale=854:480[v480];[c]scale=640:360[v360]" \
  $(rung v720 1280 720 2800) $(rung v480 854 480 1400) $(rung v360 640 360 800) \
  -map 0:v -c:v copy -f null - -map 0:a -c:a copy -f null -
end=$(date +%s.%N)
cli=$(awk '{print $2 + $3}' "$work/time")
media=$(echo "$ours" | sed 's/^galarelay media_s=\([0-9.]*\).*/\1/')
our_cpu=$(echo "$ours" | sed 's/.*cpu_s=\([0-9.]*\).*/\1/')
awk -v c="$cli" -v m="$media" -v o="$our_cpu" -v s="$start" -v e="$end" 'BEGIN {
  printf "ffmpeg_cli media_s=%.2f cpu_s=%.2f wall_s=%.2f cpu_per_media_s=%.3f\n", m, c, e - s, c / m
  printf "ratio galarelay/ffmpeg_cli cpu=%.3f (goal <= 0.9)\n", o / c
}'
