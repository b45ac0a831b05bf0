#!/usr/bin/env bash
# The OTLP integration tests' collector (tests/integration/js/otlp): node, npm, and the packages
# pinned by its package-lock.json. Installs Debian's nodejs and npm when node or npm is missing,
# and runs `npm ci` when node_modules is missing or older than the lockfile. Safe to run again;
# quiet unless something fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=tests/integration/js/otlp

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

# npm ci rewrites node_modules/.package-lock.json, so its age says when the last install was.
stamp="$dir/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
  log=$(mktemp)
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
    cat "$log" >&2
    rm -f "$log"
    echo "setup: npm ci failed in $dir" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
