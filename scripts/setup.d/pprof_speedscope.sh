#!/usr/bin/env bash
# The pprof and speedscope export tests (tests/integration/test_export_pprof_speedscope.py) open
# the exported files in the users' own tools: `go tool pprof` from Debian's golang-go, and the
# speedscope app (npm package, pinned by tests/integration/js/speedscope/package-lock.json) in
# Debian's chromium, driven by playwright-core. Installs the Debian packages that are missing and
# runs `npm ci` when node_modules is missing or older than the lockfile. Safe to run again; quiet
# unless something fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=tests/integration/js/speedscope

missing=()
for pkg in golang-go chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "setup: apt-get install ${missing[*]} failed" >&2
    exit 1
  fi
  rm -f "$log"
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
