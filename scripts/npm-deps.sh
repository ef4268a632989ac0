#!/usr/bin/env bash
# Installs the test and benchmark clients from the npm registry (tests/:
# ws, playwright-core; bench/: ws), exactly as their lockfiles pin them.
# (web/'s hls.js is fetched by the build, web/vendor.cmake.) The pins run on
# Debian 12's Node 18: playwright-core stays below 1.62, which needs Node 20.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for dir in tests bench; do
  [ -f "$root/$dir/package-lock.json" ] || continue
  if [ ! -d "$root/$dir/node_modules" ] || [ "$root/$dir/package-lock.json" -nt "$root/$dir/node_modules/.package-lock.json" ]; then
    (cd "$root/$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
      echo "npm-deps: npm ci failed in $dir" >&2; exit 1; }
  fi
done
