#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of galarelay from
# Debian 12's archive (and the npm registry for the browser/websocket test
# clients). Idempotent: packages already present are not touched, so a second
# run costs one dpkg query. Quiet when all is well, loud when anything fails.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: run as root (it calls apt-get install)" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential gcc clang libclang-rt-14-dev cmake pkg-config git curl ca-certificates
  # libraries the daemon links
  libuv1-dev libwebsockets-dev libwebsockets-evlib-uv libssl-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libavfilter-dev
  libjansson-dev libinih-dev libsqlite3-dev libhiredis-dev
  libutf8proc-dev libopencc-dev opencc libsystemd-dev
  # tests
  libcmocka-dev valgrind procps psmisc iproute2 python3
  ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  redis-server nginx-light libnginx-mod-rtmp
  chromium fonts-noto-cjk fonts-dejavu-core
)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "bootstrap: apt-get failed (log above)" >&2
    exit 1
  fi
  rm -f "$log"
  # Debian starts services on install; tests start their own on free ports.
  for s in redis-server nginx; do
    systemctl stop "$s" >/dev/null 2>&1 || service "$s" stop >/dev/null 2>&1 || true
  done
fi
