#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite twice:
# once as built for production (unit, fuzz, integration and browser tests),
# once more under AddressSanitizer + UndefinedBehaviorSanitizer. Ends with
# ctest's summary line; exits non-zero if anything failed.
#
#   scripts/test.sh            # everything
#   SKIP_ASAN=1 scripts/test.sh  # only the first pass (quicker while working)
#   scripts/test.sh --quick    # build, then the unit and fuzz tests only
set -euo pipefail
quick=
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/bootstrap.sh
bash scripts/npm-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
export CC=${CC:-clang}

# Configures and builds DIR quietly: the build's own lines (warnings, npm)
# are shown without the progress lines; on failure, the tail of the log and
# a line naming the full log, and the script stops.
build() { # dir, cmake args…
  local dir=$1; shift
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log" >&2
    echo "test: configuring $dir failed (log above: $dir.configure.log)" >&2
    exit 1
  fi
  local rc=0
  echo "test: building $dir"
  cmake --build "$dir" -j"$jobs" >"$dir/galarelay-build.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    grep -vE "$progress" "$dir/galarelay-build.log" | tail -n 60 >&2 || true
    echo "test: building $dir failed (exit $rc; full log: $dir/galarelay-build.log)" >&2
    exit 1
  fi
  grep -vE "$progress" "$dir/galarelay-build.log" || true
}
progress='^\[ *[0-9]+%\]|^(Consolidate|Scanning|Built target)'

status=0
mkdir -p build build-asan
build build -DGALARELAY_WERROR=ON
if [ -n "$quick" ]; then
  # the tests that need no daemon, peer or browser; ctest's summary last
  (cd build && ctest --output-on-failure --timeout 600 -j"$jobs" -L 'unit|fuzz') || status=1
  exit $status
fi
# Quick tests in parallel; the ones that run the real daemon with encoders,
# ffmpeg or chromium share RESOURCE_LOCK media, so no two of them overlap.
(cd build && ctest --output-on-failure --timeout 600 -j"$jobs") || status=1

if [ -z "${SKIP_ASAN:-}" ]; then
  build build-asan -DGALARELAY_WERROR=ON -DGALARELAY_SANITIZE=ON -DGALARELAY_FUZZ=OFF
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp
  (cd build-asan && ctest --output-on-failure --timeout 900 -j"$jobs") || status=1
fi
exit $status
