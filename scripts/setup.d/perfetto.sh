#!/usr/bin/env bash
# The Perfetto/Chrome export integration tests (tests/integration/test_export_perfetto_chrome.py)
# decode the exported trace with `protoc --decode_raw`, an independent protobuf decoder: installs
# Debian's protobuf-compiler when protoc is missing. Safe to run again; quiet unless it fails.
set -euo pipefail

if ! command -v protoc >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
fi
