#!/bin/sh
# Runs one chat integration script (node + the npm `ws` client) against the
# daemon in $GALARELAY_BIN. Installs tests/node_modules from the lockfile
# when it is missing (never committed).
set -eu
for need in node npm; do
  command -v "$need" >/dev/null 2>&1 || { echo "chat_run.sh: $need is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
done
here=$(cd "$(dirname "$0")" && pwd)
tests=$(dirname "$here")
if [ ! -d "$tests/node_modules/ws" ]; then
  npm ci --prefix "$tests" --no-audit --no-fund >&2
fi
exec node "$@"
