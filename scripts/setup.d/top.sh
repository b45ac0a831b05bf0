#!/usr/bin/env bash
# `pytrace top`: ncurses headers to build it (libncurses-dev) and tmux, in which its integration
# tests (tests/integration/test_top.py) drive a real 80x24 terminal. Installs only what is
# missing; safe to run again; quiet unless something fails.
set -euo pipefail

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
dpkg-query -W -f='${Status}' libncurses-dev 2>/dev/null | grep -q "install ok installed" \
  || missing+=(libncurses-dev)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "setup: could not install ${missing[*]}" >&2
  exit 1
fi
rm -f "$log"
