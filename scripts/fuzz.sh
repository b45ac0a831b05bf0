#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (+ASan/UBSan) in build-fuzz/ and runs each for $1 seconds
# (default 60). Writes a JUnit result to $2 when given. Exits non-zero on a finding.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
RESULT=${2:-}
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined \
    -Db_lundef=false -Dc_args=-fno-sanitize-recover=all >/dev/null || exit 1
fi
ninja -C build-fuzz >/dev/null || exit 1
mkdir -p build-fuzz/corpus build-fuzz/artifacts
cases=""
rc_all=0
for target in fuzz_readers; do
  mkdir -p "build-fuzz/corpus/$target"
  start=$(date +%s)
  if build-fuzz/tests/fuzz/$target -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix=build-fuzz/artifacts/ "build-fuzz/corpus/$target" 2> "build-fuzz/$target.log"; then
    runs=$(grep -o 'Done [0-9]* runs' "build-fuzz/$target.log" | tail -1)
    echo "$target: no finding in ${SECONDS_PER_TARGET}s ($runs)"
    cases="$cases<testcase classname=\"fuzz\" name=\"$target\" time=\"$(( $(date +%s) - start ))\"/>"
  else
    echo "$target: FINDING (see build-fuzz/$target.log and build-fuzz/artifacts/)"
    tail -40 "build-fuzz/$target.log"
    cases="$cases<testcase classname=\"fuzz\" name=\"$target\"><failure message=\"finding\"/></testcase>"
    rc_all=1
  fi
done
if [ -n "$RESULT" ]; then
  echo "<testsuites><testsuite name=\"fuzz\">$cases</testsuite></testsuites>" > "$RESULT"
fi
exit $rc_all
