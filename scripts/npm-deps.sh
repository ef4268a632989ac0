#!/usr/bin/env bash
# Installs the test clients from the npm registry (ws, playwright-core),
# exactly as their lockfiles pin them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for dir in tests; do
  [ -f "$root/$dir/package-lock.json" ] || continue
  if [ ! -d "$root/$dir/node_modules" ] || [ "$root/$dir/package-lock.json" -nt "$root/$dir/node_modules/.package-lock.json" ]; then
    (cd "$root/$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
      echo "npm-deps: npm ci failed in $dir" >&2; exit 1; }
  fi
done
