#!/usr/bin/env bash
# Set up pytrace on a fresh Debian bookworm (as root): install build and test dependencies with
# apt-get, configure build/ and compile build/pytrace. Then, by the first argument:
#   demo  — run the main job (scripts/demo.sh): start the bundled demo program and trace it
#   test  — run every test (scripts/test.sh)
#   (none) — only install and build
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS=(
  build-essential meson ninja-build pkg-config
  libelf-dev libunwind-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libbpf-dev
  libjansson-dev zlib1g-dev libcurl4-openssl-dev libncurses-dev
  libcmocka-dev clang llvm bpftool binutils util-linux procps
  python3 python3-pytest
  libstdc++-12-dev
  gunicorn python3-flask curl
)

need_install=0
for pkg in "${DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_install=1
done
if [ "$need_install" = 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${DEPS[@]}" >/dev/null
fi

if [ ! -f build/build.ninja ]; then
  meson setup build -Dwerror=true >/dev/null
fi
ninja -C build >/dev/null
echo "built build/pytrace"

# Optional parts (export test clients, the HTML viewer's front-end packages): each file in
# scripts/setup.d installs what its part needs and is safe to run again.
for part in scripts/setup.d/*.sh; do
  [ -e "$part" ] || continue
  bash "$part" || { echo "setup: $part failed" >&2; exit 1; }
done

case "${1:-}" in
  demo) exec bash scripts/demo.sh ;;
  test) exec bash scripts/test.sh ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [demo|test]" >&2; exit 2 ;;
esac
