#!/usr/bin/env bash
# The HTML viewer (viewer/, `pytrace view`) and its browser tests (tests/integration/js/viewer):
# Debian's nodejs, npm and chromium when missing; `npm ci` in both folders when node_modules is
# missing or stale; and, when build/ was configured before npm was there, a reconfigure so that
# ninja builds build/viewer.bundle.html. Safe to run again; quiet unless something fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# npm ci in $1 unless node_modules matches package.json + package-lock.json: the stamp holds their
# sha256, as viewer/build.mjs writes it (so the build and this script agree on "fresh").
npm_ci() {
  local dir=$1 stamp="$1/node_modules/.pytrace-stamp" want
  want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  local log
  log=$(mktemp)
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
    cat "$log" >&2
    rm -f "$log"
    echo "setup: npm ci failed in $dir" >&2
    return 1
  fi
  rm -f "$log"
  printf '%s' "$want" > "$stamp"
}

npm_ci viewer
npm_ci tests/integration/js/viewer

# build/ configured without npm has no viewer target: reconfigure, then build the bundle.
if [ -f build/build.ninja ]; then
  if ! grep -q viewer.bundle.html build/build.ninja; then
    meson setup --reconfigure build >/dev/null
  fi
  ninja -C build >/dev/null
fi
