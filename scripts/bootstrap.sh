#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of galarelay from
# Debian 12's archive (and the npm registry for the browser/websocket test
# clients). Idempotent: packages already present are not touched, so a second
# run costs one dpkg query. Quiet when all is well, loud when anything fails.
# Needs no terminal: safe as root with no stdin (CI, a fresh debootstrap).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: run as root (it calls apt-get install)" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential gcc clang libclang-rt-14-dev cmake pkg-config git curl ca-certificates
  # packaging: `cmake --build build --target package` (dpkg-shlibdeps runs `file`);
  # lintian checks the .deb, debootstrap makes the fresh root deb_install
  # installs it into
  file lintian debootstrap
  # libraries the daemon links
  libuv1-dev libwebsockets-dev libwebsockets-evlib-uv libssl-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libavfilter-dev
  libjansson-dev libinih-dev libsqlite3-dev libhiredis-dev
  libutf8proc-dev libopencc-dev opencc libsystemd-dev zlib1g-dev
  # tests (sqlite3: the archive checked on disk; time: GNU /usr/bin/time
  # in the benchmarks)
  libcmocka-dev valgrind procps psmisc iproute2 python3 sqlite3 time
  ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  # a librtmp client (librtmp-based tools must work; gst rtmpsink is one too)
  rtmpdump
  redis-server nginx-light libnginx-mod-rtmp
  chromium fonts-noto-cjk fonts-dejavu-core
  # benchmarks: bench/chat_go_server (gorilla/websocket, built offline from
  # Debian's GOPATH sources)
  golang-go golang-github-gorilla-websocket-dev
)
# Node: Debian 12's nodejs (18.x) and npm (9.x) when there is none; a newer
# node already on the PATH (NodeSource, nvm) is used as it is. The npm pins
# (tests/, bench/, web/ package.json) all run on Node 18.
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
  # Debian starts a service when its package is installed (redis-server,
  # nginx); on a box where port 80 is taken or IPv6 is off, nginx's postinst
  # then fails and so does apt. The tests start their own instances on free
  # ports, so no service is started during the install: a policy-rc.d that
  # refuses every start (exit 101), ours only if there was none, removed
  # again however this script ends.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
    own_policy=1
    trap 'rm -f "$policy" "$log"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\n# scripts/bootstrap.sh: no service starts while it installs packages.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  apt_opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # `dpkg --configure -a` finishes what an interrupted earlier run left.
  if ! { dpkg --configure -a && apt-get update -q && apt-get install "${apt_opts[@]}" "${missing[@]}"; } </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    echo "bootstrap: apt-get failed (log above)" >&2
    exit 1
  fi
  rm -f "$log"
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT INT TERM
  else
    # Someone else's policy-rc.d may have let them start: stop the services
    # this run installed (and only those).
    for s in redis-server:redis-server nginx-light:nginx; do
      case " ${missing[*]} " in
        *" ${s%%:*} "*) systemctl stop "${s#*:}" >/dev/null 2>&1 || service "${s#*:}" stop >/dev/null 2>&1 || true ;;
      esac
    done
  fi
fi

# playwright-core (tests/package.json) needs Node >= 18.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 18 ]; then
  echo "bootstrap: node $(node --version 2>/dev/null || echo '(none)') is too old: the tests need Node >= 18 (Debian 12's nodejs is 18)" >&2
  exit 1
fi
